"""The quarantine of a verified folder, `DIR/.quarantine/`: crash-consistent moves into it, and
the lock that keeps a second verify of the folder out.

A move is first written to a journal (`.quarantine/.journal.csv`), then done, then logged in
`.quarantine/quarantine.csv`; a fix moves the original into the quarantine, then writes the
fixed image in its place atomically. The next run (which holds a lock on the folder) finishes or
undoes whatever a killed run left in the journal, puts back the leftovers of older versions
(`.NAME.fixed`), and logs any file it finds in the quarantine without a row.
"""

from __future__ import annotations

import csv
import errno
import filecmp
import glob
import io
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from pixclass.collect.workers import finish_before_interrupt
from pixclass.errors import PixclassError
from pixclass.files import atomic_write

QUARANTINE_DIR = ".quarantine"
LOG_NAME = "quarantine.csv"
JOURNAL_NAME = ".journal.csv"
LOG_HEADER = ["file", "moved_to", "problem", "detail"]
JOURNAL_HEADER = ["operation", *LOG_HEADER]


class Quarantine:
    """The moves into `DIR/.quarantine/`: journalled before they start, logged once done.

    A move of file F to quarantine name Q, step by step (a kill can strike between any two):

    1. a journal row (operation, F, Q, problem, detail) is written and flushed;
    2. F is renamed to Q (across filesystems: copied to Q, whole, before F is removed);
       for a fix, the fixed image is then written to F atomically (temp file, rename);
    3. the row is appended to quarantine.csv.

    `recover` reads the journal a killed run left: a row already in quarantine.csv is done; a
    quarantined file found at Q is logged; a fix whose original is at Q but whose fixed image
    never reached F is undone (the original goes back, and this run fixes it again); a move
    that never started is forgotten. Leftover temp files of that row are ours and are removed.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / QUARANTINE_DIR
        self.log = CsvLog(self.dir / LOG_NAME, LOG_HEADER)
        self.journal = CsvLog(self.dir / JOURNAL_NAME, JOURNAL_HEADER)
        self.logged = {row[1] for row in self.log.rows()}  # every moved_to in quarantine.csv
        self.consistent = True  # False while a failed move could not be undone

    def move(self, operation: str, rel: str, problem: str, detail: str, image: bytes | None = None) -> str:
        """Move file `rel` into the quarantine (for "fix", then write `image` in its place); return
        where it went, relative to the folder. `problem` and `detail` go into its log row."""
        moved_to = self._free_name(rel)
        row = [rel, moved_to, problem, " ".join(detail.split())]
        src, dst = self.root / rel, self.root / moved_to
        self.journal.append([operation, *row])
        try:
            if operation == "fix":
                mode = stat.S_IMODE(os.stat(src).st_mode)
                _move(src, dst, keep_source=True)
                atomic_write(src, lambda tmp: Path(tmp).write_bytes(image or b""))
                os.chmod(src, mode)  # the fixed image keeps the original's permissions
            else:
                _move(src, dst)
        except OSError as err:
            try:
                _undo(src, dst)
            except OSError:
                self.consistent = False  # the journal keeps the row: the next run settles it
            raise PixclassError(f"cannot move '{src}' to '{dst}': {err.strerror or err}; make both folders "
                                "writable, then run verify again") from None
        self._logged(row)
        return moved_to

    def recover(self) -> None:
        """Finish or undo what a stopped run left: journal rows, old `.NAME.fixed` files, unlogged files."""
        self.consistent = False  # until the journal it reads is settled
        for operation, *row in self.journal.rows():
            with finish_before_interrupt():
                self._settle(operation, row)
        with finish_before_interrupt():
            _put_back_old_fixes(self.root)
        for moved_to in self._unlogged():
            with finish_before_interrupt():
                rel = moved_to.split("/", 1)[1]
                self._logged([rel, moved_to, "unlogged",
                              "found in the quarantine without a log row (moved by a run that was stopped)"])
        self.journal.remove()
        self.consistent = True

    def close(self) -> None:
        """Close the logs; the journal goes once every move it lists is done or undone."""
        self.log.close()
        self.journal.close()
        if self.consistent:
            self.journal.remove()

    def _settle(self, operation: str, row: list[str]) -> None:
        rel, moved_to = row[0], row[1]
        if moved_to in self.logged:
            return  # done and logged
        src, dst = self.root / rel, self.root / moved_to
        _remove_temps(dst)
        if operation == "fix":
            _remove_temps(src)
        if not os.path.lexists(dst):
            return  # never started
        if operation != "fix":
            if os.path.lexists(src) and _same_entry(src, dst):
                os.unlink(src)  # copied across filesystems, not yet removed: the copy is whole
            self._logged(row)
        elif not os.path.lexists(src):
            _rename(dst, src)  # the original moved, its fixed version never written: put it back
        elif _same_entry(src, dst):
            os.unlink(dst)  # our copy (across filesystems) of an original that is still in place
        else:
            self._logged(row)  # the fixed image in place, the original in quarantine: done

    def _logged(self, row: list[str]) -> None:
        self.log.append(row)
        self.logged.add(row[1])

    def _unlogged(self) -> list[str]:
        """Files in the quarantine that no log row names (relative to the folder)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if name.startswith(".") or path == self.log.path:
                    continue
                moved_to = path.relative_to(self.root).as_posix()
                if moved_to not in self.logged:
                    found.append(moved_to)
        return found

    def _free_name(self, rel: str) -> str:
        """`.quarantine/<rel>`, or `<stem>-1<suffix>`, ... : a name neither on disk nor in the log."""
        first = PurePosixPath(QUARANTINE_DIR, rel)
        for n in range(100_000):
            name = first if n == 0 else first.with_name(f"{first.stem}-{n}{first.suffix}")
            if name.as_posix() not in self.logged and not os.path.lexists(self.root / name):
                return name.as_posix()
        raise PixclassError(f"too many quarantined copies of '{rel}' in '{self.dir}'; empty it first")


@contextmanager
def only_run(root: Path, wait: float) -> Iterator[int | None]:
    """Hold an exclusive lock on `root` for the run; yields the lock's file descriptor (or None).

    A second verify of the same folder would undo the first one's moves in progress, so it
    waits up to `wait` seconds, then stops with an error.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks on folders
        yield None
        return
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        yield None
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PixclassError(f"another 'pixclass verify' is working on '{root}'; wait for it to "
                                        "finish, then run verify again") from None
                time.sleep(0.1)
            except OSError:  # a filesystem without locks: go on unguarded
                break
        yield fd
    finally:
        os.close(fd)


class CsvLog:
    """An append-only CSV file: one write and one flush per row, so a kill cuts at most the last
    line; a cut last line is dropped (the file truncated) before anything is appended."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self._fh: io.TextIOWrapper | None = None

    def rows(self) -> list[list[str]]:
        """The complete rows of the right width, header excluded."""
        if not self.path.is_file():
            return []
        self._drop_cut_line()
        with self.path.open(newline="", encoding="utf-8", errors="replace") as fh:
            return [r for r in csv.reader(fh) if len(r) == len(self.header) and r != self.header]

    def append(self, row: list[str]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_cut_line()
            self._fh = self.path.open("a", newline="", encoding="utf-8")
            if self._fh.tell() == 0:
                self._write(self.header)
        self._write(row)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def remove(self) -> None:
        self.close()
        if self.path.is_file():
            self.path.unlink()

    def _write(self, row: list[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerow(row)
        self._fh.write(buf.getvalue())  # one write of a whole line, then flushed: never interleaved
        self._fh.flush()

    def _drop_cut_line(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("r+b") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)


def _move(src: Path, dst: Path, *, keep_source: bool = False) -> None:
    """Rename `src` (a file or a link, never its target) to the free name `dst`.

    Across filesystems `src` is copied to `dst` (whole, then renamed into place) and then
    removed, unless `keep_source` (a fix overwrites it next)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
        return
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        atomic_write(dst, lambda tmp: shutil.copy2(src, tmp))
    if not keep_source:
        os.unlink(src)


def _rename(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)


def _undo(src: Path, dst: Path) -> None:
    """Roll back a move that failed half-way: the original goes back to `src`, our copy goes."""
    _remove_temps(src)
    _remove_temps(dst)
    if not os.path.lexists(dst):
        return
    if not os.path.lexists(src):
        _rename(dst, src)
    elif _same_entry(src, dst):
        os.unlink(dst)


def _same_entry(a: Path, b: Path) -> bool:
    """Both links to the same place, or both files with the same bytes."""
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    return filecmp.cmp(a, b, shallow=False)


def _remove_temps(path: Path) -> None:
    """Remove the temp files `atomic_write` leaves beside `path` when a kill interrupts it (ours)."""
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            tmp.unlink()


def _put_back_old_fixes(root: Path) -> None:
    """Older versions wrote `.NAME.fixed` beside NAME, then moved NAME to the quarantine, then
    renamed the fixed file over it: a kill in between hid NAME. Finish that, or drop the copy."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") and name.endswith(".fixed") and len(name) > len("..fixed"):
                fixed, original = Path(dirpath, name), Path(dirpath, name[1:-len(".fixed")])
                if os.path.lexists(original):
                    fixed.unlink()  # NAME never moved: the copy was only made from it
                else:
                    os.rename(fixed, original)  # NAME is in the quarantine: the fixed copy takes its place
