"""Duplicate images and train/valid leaks: exact copies by content hash, near copies by perceptual hash.

Owns `find_duplicates` (files → `DupeReport` of `DupePair`s), `near_pairs` (the multi-index search
over 64-bit hashes) and `MAX_DISTANCE` (the default Hamming distance for "near").

- exact: same bytes. Files are grouped by size first, so only files sharing a size are hashed (blake2b).
- near: the 64-bit DCT perceptual hash (`imagehash.phash`) of the picture `open_image` gives (the one
  image policy: upright, RGB), Hamming distance ≤ `max_distance`. Unreadable files are skipped and
  counted, never fatal.
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

import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pixclass.collect.workers import map_in_workers

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
_CHUNK = 1 << 20  # bytes read at a time when hashing file contents

Kind = Literal["exact", "near", "leak"]


@dataclass(frozen=True, order=True)
class DupePair:
    """Two files with the same content (exact), similar pictures (near), or either across splits (leak)."""

    a: Path
    b: Path
    kind: Kind
    distance: int  # Hamming distance of the perceptual hashes; 0 for exact copies


@dataclass
class DupeReport:
    """What `find_duplicates` found: the pairs, sorted, and the files it could not read."""

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
                    workers: int | None = None) -> DupeReport:
    """Exact and near duplicate pairs among image files; a pair across splits is a leak.

    Args:
        paths: the image files (each listed once).
        max_distance: the largest Hamming distance (0..63) of two perceptual hashes still "near";
            0 keeps only pictures whose hashes agree (e.g. the same image re-saved).
        split_of: the split of each file ("train", "valid", ...), a mapping or a function; a pair
            whose files are in two different splits is reported as "leak". Files it does not know
            (None, or missing from the mapping) leak with nothing.
        workers: processes reading images (default: all cores).
    """
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be between 0 and {HASH_BITS - 1}, not {max_distance}")
    files = [Path(p) for p in paths]
    split = split_of.get if isinstance(split_of, Mapping) else split_of
    exact = _exact_groups(files)
    found: dict[tuple[Path, Path], int] = {}
    for group in exact:
        for a, b in itertools.combinations(sorted(group), 2):
            found[(a, b)] = 0
    readable: list[Path] = []
    hashes: list[int] = []
    skipped: list[tuple[Path, str]] = []
    for path, (value, reason) in zip(files, map_in_workers(_phash, [str(f) for f in files], workers, None)):
        if value is None:
            skipped.append((path, reason))
        else:
            readable.append(path)
            hashes.append(value)
    near: dict[tuple[Path, Path], int] = {}
    for i, j, distance in near_pairs(hashes, max_distance):
        a, b = sorted((readable[i], readable[j]))
        if (a, b) not in found:
            near[(a, b)] = distance
    pairs = [_pair(a, b, "exact", d, split) for (a, b), d in found.items()]
    pairs += [_pair(a, b, "near", d, split) for (a, b), d in near.items()]
    return DupeReport(sorted(pairs, key=lambda p: (p.distance, str(p.a), str(p.b))), len(files), skipped)


def _pair(a: Path, b: Path, kind: Kind, distance: int, split: Callable[[Path], str | None] | None) -> DupePair:
    if split is not None:
        sa, sb = split(a), split(b)
        if sa is not None and sb is not None and sa != sb:
            kind = "leak"
    return DupePair(a, b, kind, distance)


def _exact_groups(files: list[Path]) -> list[list[Path]]:
    """Groups (of two or more) of byte-identical files; only files sharing a size are read."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in files:
        try:
            by_size[path.stat().st_size].append(path)
        except OSError:
            continue  # unreadable: the perceptual hash reports it
    groups: list[list[Path]] = []
    for size, same_size in by_size.items():
        if len(same_size) < 2 or size == 0:
            continue
        by_digest: dict[bytes, list[Path]] = defaultdict(list)
        for path in same_size:
            digest = _content_hash(path)
            if digest is not None:
                by_digest[digest].append(path)
        groups += [g for g in by_digest.values() if len(g) > 1]
    return groups


def _content_hash(path: Path) -> bytes | None:
    digest = hashlib.blake2b(digest_size=32)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


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
