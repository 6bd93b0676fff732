"""Near-duplicate pairs by embedding similarity: every pair of rows whose cosine similarity reaches a
threshold.

Owns `embedding_pairs` and `MIN_COSINE` (the default threshold). numpy only.

The search is exact: blocks of `_BLOCK` rows against the rows after them, one BLAS matrix product per
block, so memory stays at `_BLOCK` × N however large N is, and no pair is missed. Its time grows as
N² × F, yet up to 50k rows it beat every near-linear search measured on 2 cores
(benchmarks/bench_dupes.py, benchmarks/README.md): random-hyperplane LSH in numpy was 4-20× slower
(its many small products, and look-alike features crowding its buckets: on elpv's real features
buckets held hundreds of rows), and faiss' HNSW index was slower too, with 99 % recall. The features
themselves cost far more: one forward pass per image (~50 ms on these cores), against ~1 ms per
image for this search at 50k.
"""

from __future__ import annotations

import numpy as np

# Cosine similarity of two images' pooled features from which they count as near copies. Measured
# with the ImageNet efficientnet_lite0 body at 224 px (pixclass' concat pool, 2,560 wide; the issue 10
# report has the scripts):
#   15 photos (scikit-learn's china and flower, matplotlib's grace_hopper, the quadrants of each) and
#   copies of each: JPEG q75 min 0.886 median 0.949, half size min 0.783 median 0.876, cropped 2 % per
#   side min 0.874 median 0.959, 5 % median 0.911; the 105 pairs of different photos ≤ 0.903 (a photo
#   and one of its own quadrants).
#   elpv: copies of 150 cells: JPEG q75 min 0.918, half size min 0.905, cropped 2 % median 0.83; the
#   3.4 M pairs of different cells reach 0.9895 (4,788 ≥ 0.95, 158 ≥ 0.98: neighbouring cells cut
#   from one ingot look the same), so no threshold separates elpv's copies from its look-alikes.
# 0.95 keeps different photos apart with a margin and adds about half of the 2 % crops, which the
# perceptual hash (distance ≤ 6) misses about half of.
MIN_COSINE = 0.95
_BLOCK = 1024  # rows per block: a block's products take _BLOCK × N × 4 bytes (200 MB at 50k rows)


def embedding_pairs(embeddings, min_cosine: float = MIN_COSINE) -> list[tuple[int, int, float]]:
    """Every (i, j, cosine) with i < j and cosine(embeddings[i], embeddings[j]) ≥ `min_cosine`, sorted.

    Args:
        embeddings: (N, F) array-like of features (a torch tensor works too); all-zero rows pair with nothing.
        min_cosine: the threshold, in [-1, 1] (-1: every pair).
    """
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be between -1 and 1, not {min_cosine}")
    x = _normalized(embeddings)
    nonzero = np.abs(x).sum(axis=1) > 0
    found: list[tuple[int, int, float]] = []
    for start in range(0, len(x), _BLOCK):
        sims = x[start:start + _BLOCK] @ x[start:].T  # (block, N - start)
        i, j = np.nonzero(sims >= min_cosine)
        keep = (j > i) & nonzero[i + start] & nonzero[j + start]  # the upper triangle, without zero rows
        i, j = i[keep], j[keep]
        found += zip((i + start).tolist(), (j + start).tolist(), sims[i, j].tolist())
    return sorted(found)


def _normalized(embeddings) -> np.ndarray:
    """(N, F) float32 rows of unit length (zero rows stay zero)."""
    if hasattr(embeddings, "detach"):  # a torch tensor, without importing torch
        embeddings = embeddings.detach().float().cpu().numpy()
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d (N, F) array, not of shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
