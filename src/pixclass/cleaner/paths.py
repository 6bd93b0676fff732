"""Paths the cleaner accepts and the moves it makes: nothing outside the dataset root, nothing overwritten.

Owns `confine` (a relative path from a request → a path inside the root, or `PathRejected`),
`is_inside`, `free_name` (the first name not taken: `x.jpg`, `x-2.jpg`, `x-3.jpg`, ...) and
`move_to_free_name` / `move_exactly` (moves that never replace an existing file: a hard link
made with O_EXCL semantics, then the old name removed; a plain rename where links are impossible).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path, PurePosixPath

from pixclass.errors import PixclassError

MAX_FREE_NAMES = 10_000  # `x-2.jpg` .. `x-10000.jpg`: more same-named files in one folder is a bug


class PathRejected(PixclassError):
    """A path from a request that leads outside the dataset root, or is not a relative path at all."""


class PathTaken(PixclassError):
    """A move back cannot happen: another file now has the name."""


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when `path`, its links resolved, lies inside the folder `root` (links resolved too)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def confine(root: Path, rel: str) -> Path:
    """`root / rel` when `rel` is a relative path that stays inside `root`, links resolved.

    Raises:
        PathRejected: `rel` is empty, absolute, holds `..`, a backslash or a NUL, or leads outside
            `root` through a link.
    """
    if not rel or "\x00" in rel or "\\" in rel:
        raise PathRejected(f"bad path {rel!r}: give a path relative to the dataset folder, with '/'")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        raise PathRejected(f"bad path {rel!r}: absolute paths are refused; give a path relative to the dataset folder")
    if ".." in pure.parts:
        raise PathRejected(f"bad path {rel!r}: '..' is refused; give a path inside the dataset folder")
    path = root.joinpath(*pure.parts)
    if not is_inside(path, root):
        raise PathRejected(f"bad path {rel!r}: it leads outside the dataset folder through a link")
    return path


def free_name(path: Path) -> Path:
    """`path` if nothing has that name, else the first free `stem-N.suffix` (N = 2, 3, ...)."""
    for n in range(1, MAX_FREE_NAMES + 1):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise PixclassError(f"no free name for '{path}' after {MAX_FREE_NAMES} tries: tidy that folder")


def move_to_free_name(src: Path, dst: Path) -> Path:
    """Move `src` to `dst`, or to the first free name beside it; returns where it went."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(MAX_FREE_NAMES):
        target = free_name(dst)
        try:
            _move_new(src, target)
            return target
        except FileExistsError:  # taken between the look and the move: try the next name
            continue
    raise PixclassError(f"no free name for '{dst}': tidy that folder")


def move_exactly(src: Path, dst: Path) -> None:
    """Move `src` to `dst` only if nothing has that name.

    Raises:
        PathTaken: `dst` exists.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        _move_new(src, dst)
    except FileExistsError:
        raise PathTaken(f"'{dst}' exists again: move or rename that file, then undo") from None


def _move_new(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, refusing (FileExistsError) when `dst` exists, even if it appears meanwhile."""
    try:
        os.link(src, dst, follow_symlinks=False)  # fails if dst exists: the check and the move are one
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(dst):  # a file system without hard links: look, then rename
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)
