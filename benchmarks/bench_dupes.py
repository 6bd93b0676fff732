"""Benchmark: the scaling of `pixclass dupes`' near-duplicate searches (perceptual-hash multi-index and
embedding similarity) against brute force.

On synthetic 64-bit hashes (what `imagehash.phash` gives, with its bits close to independent):
N - N/10 random hashes plus N/10 planted near copies, each a random hash with 1..d bits flipped
(d = `MAX_DISTANCE`), for N = 1k, 10k, 50k. For each N:
- `multi_index_s`: `pixclass.collect.dupes.near_pairs(hashes, d)`, the median of `--repeat` runs;
- `brute_force_s`: every pair's distance (numpy, one row against the rest at a time) — only up to
  10k; above, extrapolated as N² from the largest measured N;
- `recall`: planted pairs the multi-index found (must be 1.0), and whether it returned exactly the
  pairs brute force found (where brute force ran).

Embeddings (`embedding_rows`): synthetic (N, 1280) features shaped like a look-alike dataset
(one shared direction plus a spread: unrelated rows at cosine ~0.8, as elpv cells' median 0.63),
N - N/10 of them plus N/10 planted copies at cosine 0.95..0.999 to a random row. For each N:
- `exact_s`: `pixclass.collect.embedding_pairs(x, 0.95)` (blocked exact search; median of `--repeat`,
  one run above 10k), `recall` of the planted pairs (must be 1.0);
- when faiss-cpu / usearch are installed (not pixclass dependencies), their HNSW indexes up to
  `--ann-max-n`: seconds (build + 16-nearest search), share of the exact pairs found, false pairs.
Writes benchmarks/results/dupes.json.

    .venv/bin/python benchmarks/bench_dupes.py [--sizes 1000 10000 50000] [--repeat 3] [--features 1280]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pixclass.collect.dupes import MAX_DISTANCE, _choose_blocks, near_pairs
from pixclass.collect.embedding_dupes import MIN_COSINE, embedding_pairs

BRUTE_FORCE_MAX = 10_000


def make_hashes(n: int, d: int, seed: int) -> tuple[list[int], set[tuple[int, int]]]:
    """n hashes: random ones, then n // 10 planted copies at distance 1..d; the planted (i, j) pairs."""
    rng = random.Random(seed)
    planted_n = n // 10
    hashes = [rng.getrandbits(64) for _ in range(n - planted_n)]
    planted: set[tuple[int, int]] = set()
    for _ in range(planted_n):
        source = rng.randrange(len(hashes))
        h = hashes[source]
        for bit in rng.sample(range(64), rng.randint(1, d)):
            h ^= 1 << bit
        planted.add((source, len(hashes)))
        hashes.append(h)
    return hashes, planted


def make_embeddings(n: int, features: int, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """(n, features) float32 rows: look-alikes (unrelated cosine ~0.8), the last n // 10 planted copies
    at cosine 0.95..0.999 of a random earlier row; the planted (i, j) pairs."""
    rng = np.random.default_rng(seed)
    m = n - n // 10
    common = rng.standard_normal(features).astype(np.float32)
    spread = rng.standard_normal((m, features)).astype(np.float32)
    x = common / np.linalg.norm(common) + 0.5 * spread / np.linalg.norm(spread, axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    source = rng.integers(0, m, n - m)
    w = rng.standard_normal((n - m, features)).astype(np.float32)
    w -= np.einsum("ij,ij->i", w, x[source])[:, None] * x[source]  # orthogonal to its source
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    cos = rng.uniform(MIN_COSINE, 0.999, (n - m, 1)).astype(np.float32)
    copies = cos * x[source] + np.sqrt(1 - cos ** 2) * w
    return np.concatenate([x, copies]), {(int(s), m + k) for k, s in enumerate(source)}


def embedding_row(n: int, features: int, repeat: int, ann_max_n: int) -> dict:
    x, planted = make_embeddings(n, features, seed=n)
    seconds, pairs = timed(lambda: embedding_pairs(x, MIN_COSINE), 1 if n > 10_000 else repeat)
    found = {(i, j) for i, j, _ in pairs}
    row = {"n": n, "features": features, "min_cosine": MIN_COSINE, "exact_s": round(seconds, 3),
           "pairs": len(found), "planted": len(planted), "recall": round(len(planted & found) / len(planted), 4)}
    for name, search in ANN.items():
        if n <= ann_max_n and _importable(name):
            ann_s, ann = timed(lambda search=search: search(x, MIN_COSINE), 1)
            row |= {f"{name}_s": round(ann_s, 3), f"{name}_found": round(len(ann & found) / max(1, len(found)), 4),
                    f"{name}_false": len(ann - found)}
    return row


def faiss_hnsw(x: np.ndarray, t: float, k: int = 16) -> set[tuple[int, int]]:
    """faiss HNSW (M=32, efConstruction=efSearch=64) on unit rows: each row's k nearest, kept at cosine ≥ t."""
    import faiss

    z = np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)
    index = faiss.IndexHNSWFlat(z.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 64
    index.add(z)
    index.hnsw.efSearch = 64
    sims, ids = index.search(z, k)
    return {(min(i, int(j)), max(i, int(j))) for i in range(len(z)) for j, s in zip(ids[i], sims[i])
            if j >= 0 and j != i and s >= t}


def usearch_hnsw(x: np.ndarray, t: float, k: int = 16) -> set[tuple[int, int]]:
    """usearch's HNSW index (cosine, f32, defaults): each row's k nearest, kept at cosine ≥ t."""
    from usearch.index import Index

    index = Index(ndim=x.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(len(x)), np.ascontiguousarray(x, dtype=np.float32))
    found = index.search(np.ascontiguousarray(x, dtype=np.float32), k)
    return {(min(i, int(j)), max(i, int(j))) for i in range(len(x)) for j, d in zip(found.keys[i], found.distances[i])
            if int(j) != i and 1 - d >= t}


ANN = {"faiss_hnsw": faiss_hnsw, "usearch_hnsw": usearch_hnsw}  # run when installed (not pixclass deps)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name.split("_")[0]) is not None


def brute_force(hashes: list[int], d: int) -> set[tuple[int, int]]:
    """Every pair within distance d, by comparing each hash with all later ones (numpy)."""
    arr = np.array(hashes, dtype=np.uint64)
    found: set[tuple[int, int]] = set()
    for i in range(len(arr) - 1):
        distances = np.bitwise_count(arr[i + 1:] ^ arr[i])
        for j in np.nonzero(distances <= d)[0]:
            found.add((i, i + 1 + int(j)))
    return found


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-distance", type=int, default=MAX_DISTANCE)
    parser.add_argument("--features", type=int, default=1280, help="embedding width (lite0's pooled 1280)")
    parser.add_argument("--ann-max-n", type=int, default=50_000, help="largest N the HNSW indexes run at")
    parser.add_argument("--skip-hashes", action="store_true", help="only the embedding rows")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dupes.json")
    args = parser.parse_args()
    d = args.max_distance
    rows = []
    last_brute: tuple[int, float] | None = None
    for n in [] if args.skip_hashes else args.sizes:
        hashes, planted = make_hashes(n, d, seed=n)
        seconds, pairs = timed(lambda hashes=hashes: near_pairs(hashes, d), args.repeat)
        found = {(i, j) for i, j, _ in pairs}
        row = {"n": n, "max_distance": d, "blocks_agreeing": list(_choose_blocks(n, d)),
               "multi_index_s": round(seconds, 4), "pairs": len(found), "planted": len(planted),
               "recall": len(planted & found) / len(planted)}
        if n <= BRUTE_FORCE_MAX:
            brute_s, brute = timed(lambda hashes=hashes: brute_force(hashes, d), 1)
            row |= {"brute_force_s": round(brute_s, 4), "equals_brute_force": brute == found}
            last_brute = (n, brute_s)
        elif last_brute is not None:
            row["brute_force_s_extrapolated"] = round(last_brute[1] * (n / last_brute[0]) ** 2, 2)
        rows.append(row)
        print(json.dumps(row))
    embedding_rows = []
    for n in args.sizes:
        embedding_rows.append(embedding_row(n, args.features, args.repeat, args.ann_max_n))
        print(json.dumps(embedding_rows[-1]))
    if args.skip_hashes and args.out.is_file():
        rows = json.loads(args.out.read_text()).get("rows", [])
    result = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}, "rows": rows,
              "embedding_rows": embedding_rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
