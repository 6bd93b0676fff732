"""Verifying an image folder: classify every file, quarantine the bad ones, optionally fix.

Each file is checked in a worker process. A JPEG whose layout is clean (every segment whole,
every scan ending at a marker, an EOI before the end) has its skeleton, all of its segments with
the scans left empty, read by libjpeg: that finds every file a decoder rejects without decoding
the pixels (the argument and its test are in `jpeg_skeleton`). Any other file, and every file
with `full_decode`, is decoded (JPEGs DCT-scaled to 1/8: the entropy decoder still reads every
byte, so truncation is caught). Problems:

| problem     | meaning                                            | action                 |
|-------------|----------------------------------------------------|------------------------|
| zero_bytes  | empty file                                         | quarantined            |
| not_image   | image extension, other content (HTML, JSON, SVG)   | quarantined            |
| truncated   | data ends early                                    | quarantined            |
| corrupt     | the decoder fails                                  | quarantined            |
| too_large   | more pixels than `max_pixels` (decompression bomb) | quarantined            |
| broken_link | a symbolic link to nothing (dangling, or a loop)   | the link quarantined   |
| animated    | several frames (only the first is used)            | kept; `fix`: 1st frame |
| odd_mode    | CMYK, 16-bit, alpha, palette with transparency...  | kept; `fix`: RGB       |
| rotated     | EXIF orientation other than 1                      | kept; `fix`: upright   |
| oversized   | longest side above `max_size`                      | kept; `fix`: shrunk    |
| unreadable  | the file cannot be opened (permissions...)         | kept, reported         |

Nothing is deleted: bad files move to `DIR/.quarantine/<same relative path>`, a fixed file's
original goes there too, and `DIR/verify.csv` lists every file checked (file, problem, action,
detail). Which files are checked is `pixclass.data.walk`'s listing, the one training reads.

Stopping at any moment is safe. Each move is first written to a journal
(`.quarantine/.journal.csv`), then done, then logged in `.quarantine/quarantine.csv`; a fix
moves the original into the quarantine, then writes the fixed image in its place atomically.
The next run (which holds a lock on the folder) finishes or undoes whatever a killed run left in
the journal, puts back the leftovers of older versions (`.NAME.fixed`), and logs any file it
finds in the quarantine without a row. Ctrl-C is held until the move in progress is done;
worker processes ignore it, and exit by themselves if the main process is killed.
"""

from __future__ import annotations

import csv
import errno
import filecmp
import glob
import io
import multiprocessing
import os
import re
import select
import shutil
import signal
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from PIL import Image, ImageOps

from pixclass.collect.imaging import DEFAULT_MAX_PIXELS, describe, sniff, truncated_images_rejected
from pixclass.collect.jpeg_skeleton import jpeg_skeleton, skeleton_decodes
from pixclass.collect.progress import counting_progress
from pixclass.data.images import IMAGE_EXTENSIONS as TRAINING_EXTENSIONS
from pixclass.data.walk import broken_link_reason, walk_files
from pixclass.errors import PixclassError
from pixclass.files import atomic_write

# Every extension training reads, and a few more JPEG spellings.
IMAGE_EXTENSIONS = set(TRAINING_EXTENSIONS) | {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp",
                                                ".bmp", ".tif", ".tiff"}
QUARANTINE_DIR = ".quarantine"
LOG_NAME = "quarantine.csv"
JOURNAL_NAME = ".journal.csv"
REPORT_NAME = "verify.csv"
LOG_HEADER = ["file", "moved_to", "problem", "detail"]
JOURNAL_HEADER = ["operation", *LOG_HEADER]
QUARANTINED = ("zero_bytes", "not_image", "truncated", "corrupt", "too_large", "broken_link")
FIXABLE = ("animated", "odd_mode", "rotated", "oversized")
LOCK_WAIT = 10.0  # seconds to wait for another verify of the same folder (or its exiting workers)
_PLAIN_MODES = {"RGB", "L"}
_NETPBM = re.compile(rb"P[1-6]\s")


@dataclass
class FileCheck:
    """The verdict on one file; `problems` is empty for a good image."""

    file: str  # relative to the verified folder, with `/`
    problems: list[str] = field(default_factory=list)
    detail: str = ""
    action: str = "kept"
    moved_to: str = ""  # where the file (or a fixed file's original) went, relative to the folder
    fixed_image: bytes | None = field(default=None, repr=False)  # a worker's repaired version, until written

    @property
    def problem(self) -> str:
        return ";".join(self.problems) or "ok"

    @property
    def action_kind(self) -> str:
        """The action without its details: kept, quarantined, fixed, would quarantine, reported."""
        return self.action.split(" (", 1)[0]


@dataclass
class VerifyReport:
    """Every file's verdict, with the report's and the quarantine's locations."""

    root: Path
    checks: list[FileCheck]
    report: Path
    quarantine: Path

    def count(self, what: str) -> int:
        """How many files have problem `what` (or `ok`), or had action `what`."""
        return sum(what in c.problems or c.problem == what or c.action_kind == what for c in self.checks)

    def __str__(self) -> str:
        """Counts by problem and by action (one short line whatever the number of files)."""
        problems = Counter(p for c in self.checks for p in c.problems or ["ok"])
        actions = Counter(c.action_kind for c in self.checks)
        parts = ", ".join(f"{n} {p}" for p, n in sorted(problems.items()))
        acts = ", ".join(f"{n} {a}" for a, n in sorted(actions.items()))
        return f"{len(self.checks)} files: {parts or 'none'} ({acts or 'nothing to do'}); report: {self.report}"


def verify_images(
    folder: str | Path,
    *,
    max_size: int | None = None,
    fix: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    quarantine: bool = True,
    workers: int | None = None,
    progress: bool = True,
    full_decode: bool = False,
    on_check: Callable[[FileCheck], None] | None = None,
) -> VerifyReport:
    """Check every image under `folder`, move bad ones to `folder/.quarantine/`, write `verify.csv`.

    Args:
        folder: the dataset folder (searched recursively).
        max_size: report images whose longest side is larger (and shrink them with `fix`).
        fix: rewrite fixable files (RGB, upright, first frame, shrunk) keeping originals in quarantine.
        max_pixels: images with more pixels are `too_large` and never decoded.
        quarantine: False reports only (nothing is moved or rewritten).
        workers: processes to use (default: all cores).
        progress: show a progress bar on stderr.
        full_decode: decode every image, even JPEGs whose skeleton already proves them readable.
        on_check: called with each file's verdict once its move or fix is done (e.g. to count
            the moves so far when Ctrl-C stops the run).
    """
    root = Path(folder)
    if max_size is not None and max_size <= 0:
        raise PixclassError(f"max_size must be a positive number of pixels, got {max_size}")
    _check_folder(root, quarantine)
    check = partial(check_file, root=root, max_pixels=max_pixels, max_size=max_size, fix=fix and quarantine,
                    full_decode=full_decode)
    with _only_run(root) if quarantine else nullcontext(None) as lock_fd:
        mover = _Quarantine(root) if quarantine else None
        try:
            if mover is not None:
                mover.recover()
            files = find_candidates(root)
            with counting_progress("verify", len(files), ["ok", "problems"], progress) as update, \
                    closing(_map(check, files, workers, lock_fd)) as results:
                checks = _act_on_each(results, mover, update, on_check)
        finally:
            if mover is not None:
                mover.close()
        report = root / REPORT_NAME
        _write_report(report, checks)
    return VerifyReport(root=root, checks=checks, report=report, quarantine=root / QUARANTINE_DIR)


def _act_on_each(results: Iterator[FileCheck], mover: _Quarantine | None, update: Callable[..., None],
                 on_check: Callable[[FileCheck], None] | None) -> list[FileCheck]:
    """Move or fix each file as its verdict arrives; a Ctrl-C waits until that file is done."""
    checks: list[FileCheck] = []
    counts = {"ok": 0, "problems": 0}
    for result in results:
        with _finish_before_interrupt():
            _act(result, mover)
            checks.append(result)
            if on_check is not None:
                on_check(result)
        counts["problems" if result.problems else "ok"] += 1
        update(**counts)
    return checks


def find_candidates(root: Path) -> list[str]:
    """Relative paths of the files to check: what `pixclass.data.walk` lists that is an image
    (by extension, or by content for other names), and links to nothing named like images."""
    found = walk_files(root)
    files = [p for p in found.files if p.suffix.lower() in IMAGE_EXTENSIONS or _looks_like_image(p)]
    links = [p for p in found.broken if p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(p.relative_to(root).as_posix() for p in files + links)


def _looks_like_image(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return sniff(fh.read(32)) is not None
    except OSError:
        return False


def _check_folder(root: Path, quarantine: bool) -> None:
    """Refuse, before any work, a folder verify could not finish in: one line saying what to do."""
    if not root.is_dir():
        raise PixclassError(f"cannot verify '{root}': not a folder")
    report = root / REPORT_NAME
    if os.path.lexists(report) and not report.is_file():
        raise PixclassError(f"cannot write the report '{report}': it is a folder (or not a file); "
                            "rename or move it away, then run verify again")
    qdir, log = root / QUARANTINE_DIR, root / QUARANTINE_DIR / LOG_NAME
    if quarantine and os.path.lexists(qdir) and not qdir.is_dir():
        raise PixclassError(f"cannot quarantine into '{qdir}': it is a file, not a folder; rename or move it "
                            "away (verify moves bad images into that folder), then run verify again")
    if quarantine and os.path.lexists(log) and not log.is_file():
        raise PixclassError(f"cannot log moves in '{log}': it is not a file; rename or move it away, "
                            "then run verify again")
    for where, needed in ((root, True), (qdir, quarantine and qdir.is_dir())):
        if needed and not os.access(where, os.W_OK | os.X_OK):
            raise PixclassError(f"cannot write in '{where}': permission denied (verify writes {REPORT_NAME} "
                                "and moves bad files to .quarantine/); make it writable, or verify a "
                                "writable copy")


def _map(check: partial, files: list[str], workers: int | None, lock_fd: int | None) -> Iterator[FileCheck]:
    """`check` over `files`, in worker processes when it pays; closing it stops the workers promptly."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < 8:  # a pool costs more than it saves here
        yield from map(check, files)
        return
    context = multiprocessing.get_context()
    fork = context.get_start_method() == "fork"  # only a forked worker holds a copy of the lock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(), lock_fd if fork else None))
    try:
        with _ctrl_c_blocked():  # the workers start deaf to Ctrl-C, then ignore it for good
            results = pool.map(check, files, chunksize=max(1, min(16, len(files) // (workers * 8))))
        yield from results
    finally:
        # On Ctrl-C or an error: drop the files not started; the workers finish one chunk and exit.
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(main: int, inherited_fd: int | None) -> None:
    """Run in each worker: leave Ctrl-C to the main process `main`, and die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the pool; no tracebacks here
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if inherited_fd is not None:  # the folder's lock is the main process's alone
        try:
            os.close(inherited_fd)
        except OSError:
            pass
    if os.getppid() == main and _parent_death_signal(signal.SIGKILL):
        if os.getppid() != main:  # it died before the kernel was asked
            os._exit(1)
        return
    threading.Thread(target=_exit_when_gone, args=(main,), daemon=True, name="watch-main").start()


def _parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send `sig` to this process when its parent dies (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _exit_when_gone(main: int) -> None:
    """The fallback, in a daemon thread: exit once process `main` has ended (also when it is not
    our parent, as under a fork server): wait on a pidfd, or poll the parent's pid."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(main)
        except ProcessLookupError:
            os._exit(1)
        except OSError:
            fd = None
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has ended
            os._exit(1)
    ppid = os.getppid()
    while os.getppid() == ppid:
        time.sleep(0.25)
    os._exit(1)


@contextmanager
def _ctrl_c_blocked() -> Iterator[None]:
    """Block SIGINT in this thread (children forked inside inherit the mask); a pending one arrives after."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def _finish_before_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block until the block is done, then deliver it."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield  # only the main thread gets signals; None: a handler Python cannot put back
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda sig, frame: caught.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


@contextmanager
def _only_run(root: Path) -> Iterator[int | None]:
    """Hold an exclusive lock on `root` for the run; yields the lock's file descriptor (or None).

    A second verify of the same folder would undo the first one's moves in progress, so it
    waits up to `LOCK_WAIT` seconds, then stops with an error.
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
        deadline = time.monotonic() + LOCK_WAIT
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


def check_file(rel: str, *, root: Path, max_pixels: int, max_size: int | None, fix: bool,
               full_decode: bool = False) -> FileCheck:
    """Classify one file (and, with `fix`, make its repaired version, returned in `fixed_image`)."""
    path = root / rel
    link = broken_link_reason(path)
    if link:
        return FileCheck(rel, ["broken_link"], link)
    try:
        problems, detail = classify(path, max_pixels=max_pixels, max_size=max_size, full_decode=full_decode)
    except Exception as err:  # noqa: BLE001 - e.g. no permission: report it, never stop the run
        return FileCheck(rel, ["unreadable"], f"{type(err).__name__}: {err}")
    result = FileCheck(rel, problems, detail)
    if fix and problems and set(problems) <= set(FIXABLE):
        try:
            result.fixed_image = _fixed_image(path, max_size)
        except Exception as err:  # noqa: BLE001 - an image Pillow reads but cannot convert: keep it
            result.detail = f"{detail}; cannot fix: {type(err).__name__}: {err}"
    return result


def classify(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_size: int | None = None,
             full_decode: bool = False) -> tuple[list[str], str]:
    """The problems of one image file and a human-readable detail ([] and "" when fine)."""
    size = path.stat().st_size
    if size == 0:
        return ["zero_bytes"], "empty file"
    with path.open("rb") as fh:
        head = fh.read(512)
    fmt = sniff(head) or _netpbm(head, path)
    if fmt is None:
        return ["not_image"], describe(head, size)
    try:
        with truncated_images_rejected():  # someone may have switched it on; we want the error
            return _decode_checks(path, fmt, max_pixels, max_size, full_decode)
    except Image.DecompressionBombError as err:
        return ["too_large"], str(err)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as err:
        kind = "truncated" if "truncat" in str(err).lower() or isinstance(err, EOFError) else "corrupt"
        return [kind], f"{fmt.upper()}: {err}"


def _decode_checks(path: Path, fmt: str, max_pixels: int, max_size: int | None,
                   full_decode: bool) -> tuple[list[str], str]:
    problems: list[str] = []
    details: list[str] = []
    with Image.open(path, formats=[fmt.upper()]) as im:
        w, h = im.size
        if w * h > max_pixels:
            return ["too_large"], f"{w}x{h} = {w * h / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP limit"
        frames = getattr(im, "n_frames", 1)
        odd = _odd_mode(im)
        orientation = im.getexif().get(0x0112, 1)
        if fmt != "jpeg":
            im.load()
        elif full_decode or not _skeleton_ok(path):
            # 1/8-scale IDCT, luma only: cheaper, yet every coefficient is still entropy-decoded,
            # so truncated or broken data fails exactly as in a full-size decode.
            im.draft("L" if im.mode == "RGB" else im.mode, (max(1, w // 8), max(1, h // 8)))
            im.load()
    if frames > 1:
        problems.append("animated")
        details.append(f"{frames} frames")
    if odd:
        problems.append("odd_mode")
        details.append(odd)
    if orientation not in (1, None):
        problems.append("rotated")
        details.append(f"EXIF orientation {orientation}")
    if max_size and max(w, h) > max_size:
        problems.append("oversized")
        details.append(f"{w}x{h} > {max_size}")
    return problems, "; ".join(details)


def _skeleton_ok(path: Path) -> bool:
    skeleton = jpeg_skeleton(path.read_bytes())
    return skeleton is not None and skeleton_decodes(skeleton)


def _odd_mode(im: Image.Image) -> str:
    mode = im.mode
    if mode == "P":
        return "palette with transparency" if "transparency" in im.info else ""
    if mode in _PLAIN_MODES:
        return f"{mode} with a transparent colour" if "transparency" in im.info else ""
    if mode.startswith("I;16") or mode in ("I", "F"):
        return f"{mode} (16/32-bit)"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return f"{mode} (alpha channel)"
    return mode  # CMYK, YCbCr, LAB, 1 ...


def _netpbm(head: bytes, path: Path) -> str | None:
    """PPM/PGM, which training reads: weak magic bytes, so only trusted with their extension."""
    return "ppm" if path.suffix.lower() in (".ppm", ".pgm") and _NETPBM.match(head) else None


def _fixed_image(path: Path, max_size: int | None) -> bytes:
    """The bytes of an RGB, upright, single-frame, shrunk version of `path`, in its own format."""
    with Image.open(path) as im:
        fmt = im.format
        if max_size and fmt == "JPEG":
            im.draft("RGB", (max_size, max_size))
        im.seek(0)
        im.load()
        im = _to_rgb(ImageOps.exif_transpose(im))
    if max_size and max(im.size) > max_size:
        im.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    out_fmt = Image.registered_extensions().get(path.suffix.lower(), fmt or "PNG")
    buf = io.BytesIO()
    im.save(buf, format=out_fmt, **({"quality": 95} if out_fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        im = im.convert("I") if im.mode != "F" else im
        top = im.getextrema()[1]
        # Scale 16-bit values to 8-bit: convert() alone would clip everything above 255 to white.
        im = im.point(lambda v: v * (255 / 65535 if top > 255 else 1)).convert("L")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:  # transparent pixels become white, not whatever colour they happen to hold
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im.convert("RGB")


def _act(check: FileCheck, mover: _Quarantine | None) -> None:
    """Quarantine a bad file or put a fixed version in place (with `mover`), or say what would happen."""
    image, check.fixed_image = check.fixed_image, None  # never keep every fixed image in memory
    if not check.problems:
        return
    bad = any(p in QUARANTINED for p in check.problems)
    if mover is None:
        check.action = "would quarantine" if bad else "reported"
    elif bad:
        check.moved_to = mover.move(check, "quarantine")
        check.action = f"quarantined ({check.moved_to})"
    elif image is not None:
        check.moved_to = mover.move(check, "fix", image)
        check.action = f"fixed (original: {check.moved_to})"


class _Quarantine:
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
        self.log = _CsvLog(self.dir / LOG_NAME, LOG_HEADER)
        self.journal = _CsvLog(self.dir / JOURNAL_NAME, JOURNAL_HEADER)
        self.logged = {row[1] for row in self.log.rows()}  # every moved_to in quarantine.csv
        self.consistent = True  # False while a failed move could not be undone

    def move(self, check: FileCheck, operation: str, image: bytes | None = None) -> str:
        """Move `check.file` into the quarantine (for "fix", then write `image` in its place)."""
        moved_to = self._free_name(check.file)
        row = [check.file, moved_to, check.problem, " ".join(check.detail.split())]
        src, dst = self.root / check.file, self.root / moved_to
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
            with _finish_before_interrupt():
                self._settle(operation, row)
        with _finish_before_interrupt():
            _put_back_old_fixes(self.root)
        for moved_to in self._unlogged():
            with _finish_before_interrupt():
                rel = moved_to.split("/", 1)[1]
                self._logged([rel, moved_to, "unlogged",
                              "found in the quarantine without a log row (moved by a run that was stopped)"])
        self.journal.remove()
        self.consistent = True
        for tmp in self.root.glob(f".{REPORT_NAME}*.tmp"):  # a report being written when a run was killed
            tmp.unlink()

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


class _CsvLog:
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


def _write_report(path: Path, checks: list[FileCheck]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["file", "problem", "action", "detail"])
    for c in checks:
        writer.writerow([c.file, c.problem, c.action, c.detail])
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue(), encoding="utf-8", newline=""))
    except OSError as err:
        raise PixclassError(f"cannot write the report '{path}': {err.strerror or err}; make the folder "
                            "writable, then run verify again") from None
