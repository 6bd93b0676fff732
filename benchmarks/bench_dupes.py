"""Benchmark: the scaling of `pixclass dupes`' near-duplicate search (the multi-index) against brute force.

On synthetic 64-bit hashes (what `imagehash.phash` gives, with its bits close to independent):
N - N/10 random hashes plus N/10 planted near copies, each a random hash with 1..d bits flipped
(d = `MAX_DISTANCE`), for N = 1k, 10k, 50k. For each N:
- `multi_index_s`: `pixclass.collect.dupes.near_pairs(hashes, d)`, the median of `--repeat` runs;
- `brute_force_s`: every pair's distance (numpy, one row against the rest at a time) — only up to
  10k; above, extrapolated as N² from the largest measured N;
- `recall`: planted pairs the multi-index found (must be 1.0), and whether it returned exactly the
  pairs brute force found (where brute force ran).
Writes benchmarks/results/dupes.json.

    .venv/bin/python benchmarks/bench_dupes.py [--sizes 1000 10000 50000] [--repeat 3]
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
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dupes.json")
    args = parser.parse_args()
    d = args.max_distance
    rows = []
    last_brute: tuple[int, float] | None = None
    for n in args.sizes:
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
    result = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
