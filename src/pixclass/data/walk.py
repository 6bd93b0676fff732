"""Which files a folder of images holds: the one walk shared by `pixclass verify` and training.

Owns the listing rules, so that verify checks exactly what the data sources will read:

- names starting with `.` (files and folders, hence `.quarantine`) are skipped;
- a symlinked folder is followed, but every real folder is entered once: a link back to an
  ancestor (a loop) or a second link to a folder already walked is not entered again;
- a file link is listed like the file it points to;
- a link that leads nowhere (dangling, or a loop of links) is listed in `broken`, never dropped
  silently: verify quarantines it, training reports it;
- anything that is not a regular file (a FIFO named `x.jpg`, a socket, a device) is skipped:
  reading one could block forever.

Imports neither torch nor Pillow.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FolderFiles:
    """The files under a folder: `files` can be read, `broken` are links that lead nowhere."""

    files: list[Path] = field(default_factory=list)  # regular files (or links to them), sorted
    broken: list[Path] = field(default_factory=list)  # dangling or looping links, sorted


def walk_files(folder: str | os.PathLike, *, recurse: bool = True, skip: Collection[str] = ()) -> FolderFiles:
    """Every non-hidden file under `folder` (paths start with `folder`), following folder links once.

    The real folders are walked first and linked folders after them, so a folder reachable both
    directly and through a link is listed under its own name.

    Args:
        folder: the folder to list (itself may be a link).
        recurse: False lists only the files directly in `folder`.
        skip: names of sub-folders of `folder` itself not to enter (e.g. a `test` folder).
    """
    top = Path(folder)
    files: list[Path] = []
    broken: list[Path] = []
    seen: set[tuple[int, int]] = set()
    todo = [top]  # the top, then each linked folder found on the way
    while todo:
        start = todo.pop(0)
        for dirpath, dirnames, filenames in os.walk(start):  # does not descend into links itself
            here = Path(dirpath)
            if not _first_visit(here, seen):  # a loop, or a folder already walked
                dirnames.clear()
                continue
            subdirs = sorted(d for d in dirnames if not d.startswith(".") and not (here == top and d in skip))
            subdirs = subdirs if recurse else []
            dirnames[:] = [d for d in subdirs if not os.path.islink(here / d)]
            todo.extend(here / d for d in subdirs if os.path.islink(here / d))
            for name in filenames:
                path = here / name
                kind = "hidden" if name.startswith(".") else _kind(path)
                if kind == "file":
                    files.append(path)
                elif kind == "broken":
                    broken.append(path)
    return FolderFiles(sorted(files), sorted(broken))


def broken_link_reason(path: str | os.PathLike) -> str | None:
    """Why the link `path` leads nowhere ("dangling link to 'x'", "link loop ..."), or None if it works."""
    if _kind(Path(path)) != "broken":
        return None
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"symbolic link loop (points to '{target}')"
    return f"dangling symbolic link to '{target}' (no such file)"


def _first_visit(folder: Path, seen: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(folder)
    except OSError:
        return False
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _kind(path: Path) -> str:
    """"file" (a regular file, through links), "broken" (a link to nothing), or "other"."""
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            return "broken"
        return "other"  # e.g. no permission to look: not ours to judge here
    return "file" if stat.S_ISREG(st.st_mode) else "other"
