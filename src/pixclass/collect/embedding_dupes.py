"""Near-duplicate pairs by embedding similarity: every pair of rows whose cosine similarity reaches a
threshold, without comparing all N² pairs once N is large.

Owns `embedding_pairs` and `MIN_COSINE` (the default threshold). numpy only.

Up to `EXACT_MAX` rows the search is exact: blocks of rows against the rows after them (a BLAS
matrix product, never the whole N × N matrix in memory). Above, random-hyperplane LSH finds the
candidates: each of `TABLES` tables buckets the rows by the signs of `bits` random projections of
the *centred* rows (minus their mean: on look-alike pictures the raw features share one big common
direction and would all fall into one bucket), `bits` growing with log2 N so buckets hold ~16 rows;
only bucket-mates are compared, each candidate by its true cosine. Cost: N·F·bits·TABLES for the
projections plus the candidates, near-linear in N (benchmarks/bench_dupes.py: 1k, 10k, 50k).
"""

from __future__ import annotations

import math

import numpy as np

# Cosine similarity of two images' pooled features from which they count as near copies. Measured
# with the pretrained efficientnet_lite0 body at 224 px on the 2,624 elpv cells and 5 copies of 150
# of them (/tmp/dupes_emb/elpv_threshold.py, see the report of issue 10): see MEASURED below.
MIN_COSINE = 0.95
EXACT_MAX = 8192  # rows up to which the exact search runs (8k × 1280: 0.3 s; 50k LSH: see benchmarks)
TABLES = 24  # LSH tables: recall of planted pairs at cosine ≥ 0.95 measured in benchmarks/bench_dupes.py
_BLOCK = 1024  # rows per block of the exact search and of the projections
_VERIFY = 8192  # candidate pairs whose cosine is computed at once (memory: 2 × this × F floats)


def embedding_pairs(embeddings, min_cosine: float = MIN_COSINE, exact_max: int = EXACT_MAX,
                    seed: int = 0) -> list[tuple[int, int, float]]:
    """Every (i, j, cosine) with i < j and cosine(embeddings[i], embeddings[j]) ≥ `min_cosine`, sorted.

    Args:
        embeddings: (N, F) array-like of features (a torch tensor works too); all-zero rows pair with nothing.
        min_cosine: the threshold, in (-1, 1].
        exact_max: up to this many rows the exact search runs; above, LSH candidates (module docstring).
        seed: of the LSH projections (the result is deterministic for a seed).
    """
    if not -1.0 < min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in (-1, 1], not {min_cosine}")
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
    bits = min(max(int(math.log2(n)) - 4, 8), 24)  # ~16 rows per bucket of spread rows
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((f, bits * TABLES)).astype(np.float32)
    mean = x.mean(axis=0)
    weights = (1 << np.arange(bits, dtype=np.int64))
    keys = np.empty((n, TABLES), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        signs = ((x[start:start + _BLOCK] - mean) @ planes) > 0  # (block, bits × TABLES)
        keys[start:start + _BLOCK] = signs.reshape(-1, TABLES, bits) @ weights
    candidates = np.unique(np.concatenate([_pair_ids(keys[:, table]) for table in range(TABLES)]))
    found_i, found_j, found_c = [], [], []
    for start in range(0, len(candidates), _VERIFY):
        ids = candidates[start:start + _VERIFY]
        i, j = ids // n, ids % n
        cos = np.einsum("ij,ij->i", x[i], x[j])
        near = cos >= t
        found_i.append(i[near])
        found_j.append(j[near])
        found_c.append(cos[near])
    if not found_i:
        return np.array([], np.int64), np.array([], np.int64), np.array([], np.float32)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_c)


def _pair_ids(keys: np.ndarray) -> np.ndarray:
    """i × N + j (i < j) for every pair of rows sharing a key, each pair once."""
    n = len(keys)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, n])
    end = np.repeat(starts + sizes, sizes)  # one past the last member of each one's bucket
    index = np.arange(n)
    at = index[end - index > 1]
    out = [np.array([], np.int64)]
    step = 1
    while at.size:  # each member with the one `step` places later in its bucket
        i, j = order[at], order[at + step]
        out.append(np.minimum(i, j) * n + np.maximum(i, j))
        step += 1
        at = at[end[at] - at > step]
    return np.concatenate(out)
