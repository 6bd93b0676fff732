"""Near-duplicate pairs by embedding similarity: every pair of rows whose cosine similarity reaches a
threshold, without comparing all N² pairs once N is large.

Owns `embedding_pairs` and `MIN_COSINE` (the default threshold). numpy only.

Up to `EXACT_MAX` rows the search is exact: blocks of rows against the rows after them (a BLAS
matrix product, never the whole N × N matrix in memory). Above, random-hyperplane LSH finds the
candidates: each of `TABLES` tables buckets the rows by the signs of `bits` random projections of
the *centred* rows (minus their mean: on look-alike pictures the raw features share one big common
direction and would all fall into one bucket), `bits` growing with log2 N so buckets hold ~64 rows;
only bucket-mates are compared (one small matrix product per bucket), by their true cosine. Cost: N·F·bits·TABLES for the
projections plus the candidates, near-linear in N (benchmarks/bench_dupes.py: 1k, 10k, 50k).
"""

from __future__ import annotations

import itertools
import math

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
# Rows up to which the exact search runs: on 2 busy cores one BLAS product per block beat the LSH's
# many small ones at 10k × 1280 (exact 0.7-2.4 s, LSH 2-5 s; benchmarks/bench_dupes.py).
EXACT_MAX = 20_000
# LSH tables × ~64-row buckets, measured at 10k look-alike rows with planted copies at cosine
# 0.95..0.999: 16 × 64 found 99.0 % of them (12 × 32: 96.9 %, 8 × 64: 90.2 %, 24 × 16: 99.6 % but slower).
TABLES = 16
_BLOCK = 1024  # rows per block of the exact search and of the projections


def embedding_pairs(embeddings, min_cosine: float = MIN_COSINE, exact_max: int = EXACT_MAX,
                    seed: int = 0) -> list[tuple[int, int, float]]:
    """Every (i, j, cosine) with i < j and cosine(embeddings[i], embeddings[j]) ≥ `min_cosine`, sorted.

    Args:
        embeddings: (N, F) array-like of features (a torch tensor works too); all-zero rows pair with nothing.
        min_cosine: the threshold, in [-1, 1] (-1: every pair).
        exact_max: up to this many rows the exact search runs; above, LSH candidates (module docstring).
        seed: of the LSH projections (the result is deterministic for a seed).
    """
    if not -1.0 <= min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be between -1 and 1, not {min_cosine}")
    x = _normalized(embeddings)
    if len(x) < 2:
        return []
    if len(x) <= exact_max:
        i, j, cos = _exact(x, min_cosine)
    else:
        i, j, cos = _lsh(x, min_cosine, seed)
    order = np.lexsort((j, i))
    return [(int(a), int(b), float(c)) for a, b, c in zip(i[order], j[order], cos[order])]


def _normalized(embeddings) -> np.ndarray:
    """(N, F) float32 rows of unit length (zero rows stay zero)."""
    if hasattr(embeddings, "detach"):  # a torch tensor, without importing torch
        embeddings = embeddings.detach().float().cpu().numpy()
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d (N, F) array, not of shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _exact(x: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    found_i, found_j, found_c = [], [], []
    for start in range(0, len(x), _BLOCK):
        sims = x[start:start + _BLOCK] @ x[start:].T  # (block, N - start)
        i, j = np.nonzero(sims >= t)
        keep = j > i  # the upper triangle: each pair once, no row with itself
        found_i.append(i[keep] + start)
        found_j.append(j[keep] + start)
        found_c.append(sims[i[keep], j[keep]])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_c)


def _lsh(x: np.ndarray, t: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, f = x.shape
    bits = min(max(int(math.log2(n)) - 6, 8), 24)  # ~64 rows per bucket of spread rows
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((f, bits * TABLES)).astype(np.float32)
    mean = x.mean(axis=0)
    weights = 1 << np.arange(bits, dtype=np.int64)
    keys = np.empty((n, TABLES), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        signs = ((x[start:start + _BLOCK] - mean) @ planes) > 0  # (block, bits × TABLES)
        keys[start:start + _BLOCK] = signs.reshape(-1, TABLES, bits) @ weights
    found_ids, found_c = [np.array([], np.int64)], [np.array([], np.float32)]
    for table in range(TABLES):
        order = np.argsort(keys[:, table], kind="stable")
        rows, sorted_keys = x[order], keys[order, table]
        edges = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
        for a, b in itertools.pairwise(edges):
            if b - a > 1:  # the bucket's rows against each other: an exact search of a few rows
                i, j, cos = _exact(rows[a:b], t)
                i, j = order[i + a], order[j + a]
                found_ids.append(np.minimum(i, j) * n + np.maximum(i, j))
                found_c.append(cos)
    ids, first = np.unique(np.concatenate(found_ids), return_index=True)
    return ids // n, ids % n, np.concatenate(found_c)[first]
