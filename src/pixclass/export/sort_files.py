"""Sorting predicted images into one folder per label: what `pixclass predict --sort-into DIR` does.

Owns: which folders of DIR a prediction goes to (`target_folders`: the label, every tag of a
multi-label prediction, `_unsure` below `--min-prob`), the folder name of a label, and putting a
file there without ever overwriting (`place`). A name already taken by another file gets a suffix
(`cat (2).jpg`); a name holding the same bytes means the file is already sorted and nothing is
written (with `--move` the source, whose bytes are safe in DIR, is then removed). A copy is written
to a hidden temporary file and linked to its name only when complete, so an interrupted run never
leaves a half-written image under a real name. A move is a rename on the same filesystem, and a
synced copy before the source is removed across filesystems: the file is never lost.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pixclass.errors import PixclassError
from pixclass.export.predictor import Prediction

UNSURE = "_unsure"  # the folder of predictions under --min-prob, and of multi-label images with no tag
COPIED, MOVED, ALREADY_THERE = "copied", "moved", "already there"
_CHUNK = 1 << 20  # bytes compared at a time when two files have the same size


def check_sorting(task: str, move: bool) -> None:
    """Refuse a sort that cannot be done for a model of `task` (one line saying why and what to do)."""
    if task == "regression":
        raise PixclassError("--sort-into needs classes, and a regression model predicts a number; "
                            "use --csv to get the values")
    if task == "multi" and move:
        raise PixclassError("--move cannot put one image into the folder of each of its tags (multi-label "
                            "model); use --copy (the default)")


def target_folders(pred: Prediction, task: str, min_prob: float | None = None) -> list[str]:
    """The folders (names inside DIR) a prediction goes to.

    Single-label: the label's folder, or `_unsure` when the probability is under `min_prob`.
    Multi-label: the folder of every predicted tag whose probability is at least `min_prob`;
    `_unsure` when no tag remains.
    """
    if task == "multi":
        tags = [t for t in pred.label if min_prob is None or pred.probs[t] >= min_prob]
        return [folder_name(t) for t in tags] or [UNSURE]
    if min_prob is not None and pred.prob < min_prob:
        return [UNSURE]
    return [folder_name(str(pred.label))]


def folder_name(label: str) -> str:
    """A label as one folder name: path separators become `_`, and `.`/`..` cannot climb out of DIR."""
    name = label.replace("/", "_").replace("\\", "_").replace("\0", "_")
    return name.replace(".", "_") if name in (".", "..") else name


def place(src: Path, folder: Path, move: bool) -> tuple[Path, str]:
    """Copy (or move) `src` into `folder`, never overwriting; returns (where it is, what was done).

    Raises:
        PixclassError: the file cannot be written (disk full, permissions): one line naming it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for dest in _names(folder, src.name):
            if os.path.lexists(dest):
                if os.path.samefile(src, dest):  # the file is its own destination: sorted already
                    if move and not _same_entry(src, dest):
                        src.unlink()  # another name (hard link) of the file that is in `dest`
                    return dest, ALREADY_THERE
                if _same_bytes(src, dest):
                    if move:
                        src.unlink()  # its bytes are in `dest`: the move is done
                    return dest, ALREADY_THERE
                continue
            try:
                _put(src, dest, move)
            except FileExistsError:  # the name was taken meanwhile: try the next one
                continue
            return dest, MOVED if move else COPIED
    except OSError as err:
        verb = "move" if move else "copy"
        raise PixclassError(f"could not {verb} '{src}' into '{folder}': {err.strerror or err}; "
                            f"the file was left where it was") from None
    raise AssertionError("unreachable: _names is endless")


def _names(folder: Path, name: str) -> Iterator[Path]:
    """`folder/name`, then `folder/stem (2).ext`, `folder/stem (3).ext`, …"""
    yield folder / name
    stem, ext = os.path.splitext(name)
    n = 2
    while True:
        yield folder / f"{stem} ({n}){ext}"
        n += 1


def _put(src: Path, dest: Path, move: bool) -> None:
    """Make `dest` hold `src`'s bytes (and remove `src` when moving); FileExistsError if `dest` exists."""
    if move and _link(src, dest):
        src.unlink()  # a rename that cannot overwrite: link, then unlink
        return
    # A copy (or a move across filesystems): complete under a hidden temporary name (the name
    # `files.atomic_write` uses, so `remove_stale_temps` knows it), then linked to its real name.
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copy2(src, tmp)
        if move:  # the source goes away: the copy must be on disk first
            _fsync(tmp)
        if not _link(Path(tmp), dest):
            if os.path.lexists(dest):
                raise FileExistsError(errno.EEXIST, "exists", str(dest))
            os.rename(tmp, dest)
        if move:
            _fsync(dest.parent)
            src.unlink()
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _link(src: Path, dest: Path) -> bool:
    """Hard-link `src` as `dest`: True when done, False when the filesystem cannot (another device,
    no hard links); FileExistsError when `dest` exists."""
    try:
        os.link(src, dest, follow_symlinks=False)  # a symlink moves as itself, as a rename would move it
    except FileExistsError:
        raise
    except NotImplementedError:  # follow_symlinks=False where the platform cannot (Windows)
        return False
    except OSError as err:
        if err.errno in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            return False
        raise
    return True


def _same_entry(a: Path, b: Path) -> bool:
    """Whether two paths name one directory entry (not merely one file through two hard links)."""
    return Path(os.path.realpath(a.parent)) / a.name == Path(os.path.realpath(b.parent)) / b.name


def _fsync(path: str | Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened (so synced) on some systems
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _same_bytes(a: Path, b: Path) -> bool:
    if not b.is_file() or a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True
