"""Duplicate images and train/valid leaks: exact copies by content hash, near copies by perceptual
hash or, where a model's features exist, by embedding similarity.

Owns `find_duplicates` (files → `DupeReport` of `DupePair`s), `near_pairs` (the multi-index search
over 64-bit hashes), `MAX_DISTANCE` (the default Hamming distance for "near") and `MIN_COSINE` (the
default embedding similarity for "near", from `pixclass.collect.embedding_dupes`, which owns that search).

- exact: same bytes (`pixclass.data.hashes`: files grouped by size, only size-mates hashed). method "content".
- near, method "phash": the 64-bit DCT perceptual hash (`imagehash.phash`) of the picture `open_image`
  gives (the one image policy: upright, RGB), Hamming distance ≤ `max_distance`. Unreadable files are
  skipped and counted, never fatal.
- near, method "embedding": when `embeddings` (a model's pooled features, one row per file) are given,
  also the pairs of cosine similarity ≥ `min_cosine`; distance = 1 − cosine. They add small crops
  the hash misses; they do not fix look-alike sets (elpv cells: see `embedding_dupes.MIN_COSINE`).
- leak: an exact or near pair whose two files are in different splits (`split_of`), e.g. train and
  valid; it keeps its distance.

The near search never compares all N² pairs. The 64 bits are cut into `d + r` blocks; two hashes
within distance d differ in at most d blocks, so (pigeonhole) they agree exactly on some r blocks.
One table per choice of r blocks buckets the hashes by those blocks' bits; only hashes sharing a
bucket are compared, and each candidate's full distance is checked. r = 1 is the classic multi-index;
a larger r gives longer keys (fewer false candidates) for more tables, and `_choose_blocks` takes
the cheaper for the number of hashes. Cost: tables × (N + N²/2^key_bits) for spread hashes, which
for N ≤ a few million is near-linear (benchmarks/bench_dupes.py: 1k, 10k, 50k).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pixclass.collect.embedding_dupes import MIN_COSINE, embedding_pairs
from pixclass.collect.workers import map_in_workers
from pixclass.data.hashes import exact_groups

if TYPE_CHECKING:
    import numpy as np

# Hamming distance (of 64 bits) up to which two pictures count as near copies. Measured with
# `open_image` + `imagehash.phash` on scikit-learn's china/flower photos, 8 quadrant crops of them
# and 200 elpv solar cells (/tmp/dupes_measure/measure.py, see the report of issue 10):
#   copy → distance to its original (max over the 210 pictures): JPEG q90 4, JPEG q50 4, half size 4,
#   quarter size + JPEG q75 6, grey 0; cropped 2 % per side median 6 (max 18), 5 % median 16.
#   unrelated: the 45 photo pairs ≥ 22; the 19,900 elpv cell pairs (one look-alike product) median 28,
#   12 pairs (0.06 %) ≤ 6, 7 ≤ 4.
# So 6 catches every re-encoded or resized copy; crops beyond ~2 % are out of reach of any phash.
MAX_DISTANCE = 6
HASH_BITS = 64

Kind = Literal["exact", "near", "leak"]
Method = Literal["content", "phash", "embedding"]


@dataclass(frozen=True, order=True)
class DupePair:
    """Two files with the same content (exact), similar pictures (near), or either across splits (leak)."""

    a: Path
    b: Path
    kind: Kind
    # Hamming distance of the perceptual hashes (phash), 1 − cosine similarity rounded to 4 digits
    # (embedding), 0 for exact copies (content)
    distance: float
    method: Method = "phash"  # what found the pair


@dataclass
class DupeReport:
    """What `find_duplicates` found: the pairs, closest first, and the files it could not read."""

    pairs: list[DupePair]
    files: int  # files looked at
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why) not readable as an image

    def count(self, kind: Kind) -> int:
        return sum(1 for p in self.pairs if p.kind == kind)

    def __str__(self) -> str:
        text = (f"{self.files} files: {self.count('exact')} exact pairs, {self.count('near')} near pairs, "
                f"{self.count('leak')} leaks")
        return text + (f"; {len(self.skipped)} unreadable files skipped" if self.skipped else "")


def find_duplicates(paths: Sequence[str | Path], max_distance: int = MAX_DISTANCE,
                    split_of: Mapping[Path, str] | Callable[[Path], str | None] | None = None,
                    workers: int | None = None, embeddings: np.ndarray | None = None,
                    min_cosine: float = MIN_COSINE) -> DupeReport:
    """Exact and near duplicate pairs among image files; a pair across splits is a leak.

    Args:
        paths: the image files (each listed once).
        max_distance: the largest Hamming distance (0..63) of two perceptual hashes still "near";
            0 keeps only pictures whose hashes agree (e.g. the same image re-saved).
        split_of: the split of each file ("train", "valid", ...), a mapping or a function; a pair
            whose files are in two different splits is reported as "leak". Files it does not know
            (None, or missing from the mapping) leak with nothing.
        workers: processes reading images (default: all cores).
        embeddings: (N, F) features, row i of `paths[i]` (e.g. a model's pooled body features):
            pairs whose cosine similarity reaches `min_cosine` are near too (method "embedding"),
            besides those of the perceptual hash.
        min_cosine: the smallest cosine similarity of two embeddings still "near".
    """
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be between 0 and {HASH_BITS - 1}, not {max_distance}")
    files = [Path(p) for p in paths]
    if embeddings is not None and len(embeddings) != len(files):
        raise ValueError(f"{len(embeddings)} embeddings for {len(files)} files: give one row per file")
    split = split_of.get if isinstance(split_of, Mapping) else split_of
    found: dict[tuple[Path, Path], tuple[float, Method]] = {}
    for group in exact_groups(files):
        for a, b in itertools.combinations(sorted(group), 2):
            found[(a, b)] = (0, "content")
    near, skipped = _phash_near(files, max_distance, workers)
    if embeddings is not None:
        near = _embedding_near(files, embeddings, min_cosine) | near  # a pair both find: its phash distance
    for (a, b), d in near.items():
        found.setdefault((a, b), d)
    pairs = [_pair(a, b, "exact" if m == "content" else "near", d, m, split) for (a, b), (d, m) in found.items()]
    # Closest first: exact and phash pairs by distance, then embedding pairs (another unit) by distance.
    pairs.sort(key=lambda p: (p.method == "embedding", p.distance, str(p.a), str(p.b)))
    return DupeReport(pairs, len(files), skipped)


def _phash_near(files: list[Path], max_distance: int, workers: int | None
                ) -> tuple[dict[tuple[Path, Path], tuple[float, Method]], list[tuple[Path, str]]]:
    """Near pairs by perceptual hash (sorted path pair → (distance, "phash")), and the unreadable files."""
    readable: list[Path] = []
    hashes: list[int] = []
    skipped: list[tuple[Path, str]] = []
    for path, (value, reason) in zip(files, map_in_workers(_phash, [str(f) for f in files], workers, None)):
        if value is None:
            skipped.append((path, reason))
        else:
            readable.append(path)
            hashes.append(value)
    near: dict[tuple[Path, Path], tuple[float, Method]] = {}
    for i, j, distance in near_pairs(hashes, max_distance):
        a, b = sorted((readable[i], readable[j]))
        near[(a, b)] = (distance, "phash")
    return near, skipped


def _embedding_near(files: list[Path], embeddings: np.ndarray, min_cosine: float
                    ) -> dict[tuple[Path, Path], tuple[float, Method]]:
    near: dict[tuple[Path, Path], tuple[float, Method]] = {}
    for i, j, cosine in embedding_pairs(embeddings, min_cosine):
        a, b = sorted((files[i], files[j]))
        near[(a, b)] = (round(max(0.0, 1.0 - cosine), 4), "embedding")
    return near


def _pair(a: Path, b: Path, kind: Kind, distance: float, method: Method,
          split: Callable[[Path], str | None] | None) -> DupePair:
    if split is not None:
        sa, sb = split(a), split(b)
        if sa is not None and sb is not None and sa != sb:
            kind = "leak"
    return DupePair(a, b, kind, distance, method)


def _phash(path: str) -> tuple[int | None, str]:
    """(the picture's 64-bit perceptual hash, "") or (None, why it cannot be read); runs in a worker."""
    import imagehash

    from pixclass.data.images import open_image
    from pixclass.errors import ImageReadError

    try:
        img = open_image(path, min_size=64)  # phash looks at 32 × 32: a reduced JPEG decode is plenty
    except ImageReadError as err:
        return None, err.reason
    except OSError as err:
        return None, err.strerror or str(err)
    return int(str(imagehash.phash(img)), 16), ""


def hamming(x: int, y: int) -> int:
    """Number of bits in which two hashes differ."""
    return (x ^ y).bit_count()


def near_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int, int]]:
    """Every (i, j, distance) with i < j and `hamming(hashes[i], hashes[j]) <= max_distance`, sorted.

    A multi-index search (module docstring): no N × N comparison. Hashes are 64-bit ints.
    """
    import numpy as np

    n = len(hashes)
    if n < 2:
        return []
    values = np.array(hashes, dtype=np.uint64)
    index = np.arange(n)
    found_i, found_j, found_d = [], [], []
    for mask in _block_masks(*_choose_blocks(n, max_distance)):
        keys = values & np.uint64(mask)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, n])
        end = np.repeat(starts + sizes, sizes)  # (n,) one past the last member of each one's bucket
        # Compare each member with the one `step` places later in its bucket: every pair in a bucket
        # exactly once, and only members with someone that far ahead stay in `at`.
        at = index[end - index > 1]
        step = 1
        while at.size:
            i, j = order[at], order[at + step]
            distance = _popcount(values[i] ^ values[j])
            near = distance <= max_distance
            found_i.append(np.minimum(i, j)[near])
            found_j.append(np.maximum(i, j)[near])
            found_d.append(distance[near])
            step += 1
            at = at[end[at] - at > step]
    if not found_i:
        return []
    pair_ids, first = np.unique(np.concatenate(found_i) * n + np.concatenate(found_j), return_index=True)
    distances = np.concatenate(found_d)[first]
    return [(int(p // n), int(p % n), int(d)) for p, d in zip(pair_ids, distances)]


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 in `x`, as int64."""
    import numpy as np

    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    table = np.array([v.bit_count() for v in range(256)], dtype=np.int64)
    return table[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)


def _choose_blocks(n: int, d: int) -> tuple[int, int]:
    """(blocks, agreeing) for n hashes within distance d: the cheapest of r = 1..4 by estimated work."""
    best: tuple[float, int, int] | None = None
    for r in range(1, 5):
        blocks = d + r
        if blocks > HASH_BITS:
            break
        tables = math.comb(blocks, r)
        key_bits = HASH_BITS * r // blocks  # the shortest key of a table (blocks differ by one bit)
        cost = tables * (n + n * n / 2 ** (key_bits + 1))
        if best is None or cost < best[0]:
            best = (cost, blocks, r)
    assert best is not None
    return best[1], best[2]


def _block_masks(blocks: int, agreeing: int) -> list[int]:
    """One bit mask per table: the union of `agreeing` of the `blocks` near-equal slices of 64 bits."""
    edges = [HASH_BITS * k // blocks for k in range(blocks + 1)]
    slices = [((1 << (edges[k + 1] - edges[k])) - 1) << edges[k] for k in range(blocks)]
    return [sum(chosen) for chosen in itertools.combinations(slices, agreeing)]
