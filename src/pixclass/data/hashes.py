"""Byte-identical files by content hash: the one exact-copy test, shared by `pixclass dupes` and the
Learner's leak warning (train sits below collect, so the core lives here in the data layer).

Owns `content_hash` (blake2b of a file's bytes), `exact_groups` (groups of identical files; only
files sharing a size are read) and `shared_copies` (identical files across two lists, e.g. train
and valid). Cost: one `stat` per file, and reading only the files whose size another file shares.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

_CHUNK = 1 << 20  # bytes read at a time when hashing file contents


def content_hash(path: str | Path) -> bytes | None:
    """The blake2b digest (32 bytes) of a file's contents, or None when it cannot be read."""
    digest = hashlib.blake2b(digest_size=32)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


def exact_groups(files: Iterable[str | Path]) -> list[list[Path]]:
    """Groups (of two or more, in the order given) of byte-identical non-empty files.

    Files are grouped by size first, so only files sharing a size are read. A file listed twice is
    one file; files that cannot be read are left out.
    """
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in dict.fromkeys(Path(f) for f in files):
        try:
            by_size[path.stat().st_size].append(path)
        except OSError:
            continue
    groups: list[list[Path]] = []
    for size, same_size in by_size.items():
        if len(same_size) < 2 or size == 0:
            continue
        by_digest: dict[bytes, list[Path]] = defaultdict(list)
        for path in same_size:
            digest = content_hash(path)
            if digest is not None:
                by_digest[digest].append(path)
        groups += [g for g in by_digest.values() if len(g) > 1]
    return groups


def shared_copies(first: Sequence[str | Path], second: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """Every (a, b) with a in `first`, b in `second`, a != b and the same bytes: e.g. train images
    copied into valid. Sorted; a file listed in both is not a copy of itself."""
    a_side = {Path(p) for p in first}
    b_side = {Path(p) for p in second}
    pairs = set()
    for group in exact_groups([*first, *second]):
        for x, y in itertools.permutations(group, 2):
            if x in a_side and y in b_side and x != y:
                pairs.add((x, y))
    return sorted(pairs)
