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
detail). Which files are checked is `pixclass.data.walk`'s listing, the one training reads, with
the image extensions training reads (`pixclass.data.images.IMAGE_EXTENSIONS`); files of other names
are checked too when their first bytes are an image's, so a misnamed image is reported. A fixed
file is the picture training reads from its original (`open_image`: upright, `to_rgb`), written
in the format its name says.

Stopping at any moment is safe: see `quarantine` (journalled moves) and `workers` (Ctrl-C).
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from PIL import Image

from pixclass.collect.imaging import describe, sniff, truncated_images_rejected
from pixclass.collect.jpeg_skeleton import jpeg_skeleton, skeleton_decodes
from pixclass.collect.progress import counting_progress
from pixclass.collect.quarantine import LOG_NAME, QUARANTINE_DIR, Quarantine, only_run
from pixclass.collect.workers import finish_before_interrupt, map_in_workers
from pixclass.data.images import IMAGE_FORMATS, MAX_PIXELS, is_image_file, open_image
from pixclass.data.walk import broken_link_reason, walk_files
from pixclass.errors import PixclassError
from pixclass.files import atomic_write

REPORT_NAME = "verify.csv"
QUARANTINED = ("zero_bytes", "not_image", "truncated", "corrupt", "too_large", "broken_link")
FIXABLE = ("animated", "odd_mode", "rotated", "oversized")
LOCK_WAIT = 10.0  # seconds to wait for another verify of the same folder (or its exiting workers)
_PLAIN_MODES = {"RGB", "L"}
_NETPBM = re.compile(rb"P[1-6]\s")
_NETPBM_EXTENSIONS = frozenset(ext for ext, decoder in IMAGE_FORMATS.items() if decoder == "PPM")


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
    max_pixels: int = MAX_PIXELS,
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
    with only_run(root, LOCK_WAIT) if quarantine else nullcontext(None) as lock_fd:
        mover = Quarantine(root) if quarantine else None
        try:
            if mover is not None:
                mover.recover()
                _remove_report_temps(root)
            files = find_candidates(root)
            with counting_progress("verify", len(files), ["ok", "problems"], progress) as update, \
                    closing(map_in_workers(check, files, workers, lock_fd)) as results:
                checks = _act_on_each(results, mover, update, on_check)
        finally:
            if mover is not None:
                mover.close()
        report = root / REPORT_NAME
        _write_report(report, checks)
    return VerifyReport(root=root, checks=checks, report=report, quarantine=root / QUARANTINE_DIR)


def _act_on_each(results: Iterator[FileCheck], mover: Quarantine | None, update: Callable[..., None],
                 on_check: Callable[[FileCheck], None] | None) -> list[FileCheck]:
    """Move or fix each file as its verdict arrives; a Ctrl-C waits until that file is done."""
    checks: list[FileCheck] = []
    counts = {"ok": 0, "problems": 0}
    for result in results:
        with finish_before_interrupt():
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
    files = [p for p in found.files if is_image_file(p) or _looks_like_image(p)]
    links = [p for p in found.broken if is_image_file(p)]
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


def classify(path: Path, *, max_pixels: int = MAX_PIXELS, max_size: int | None = None,
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
    with warnings.catch_warnings():  # Pillow warns above its limit; ours is checked just below
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(path, formats=[fmt.upper()])
    with im:
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
    return "ppm" if path.suffix.lower() in _NETPBM_EXTENSIONS and _NETPBM.match(head) else None


def _fixed_image(path: Path, max_size: int | None) -> bytes:
    """The bytes of `path` as training reads it (`open_image`: first frame, upright, RGB), shrunk to
    `max_size`, in the format its name says (its own format when the name says none)."""
    im = open_image(path, min_size=max_size)  # JPEGs DCT-scaled, never below max_size
    if max_size and max(im.size) > max_size:
        im.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    out_fmt = IMAGE_FORMATS.get(path.suffix.lower()) or _own_format(path)
    buf = io.BytesIO()
    # JPEG/WebP are re-encoded with loss; 4:4:4 keeps colour edges (4:2:0 halves colour resolution).
    im.save(buf, format=out_fmt, **({"quality": 95, "subsampling": 0} if out_fmt == "JPEG" else
                                     {"quality": 95} if out_fmt == "WEBP" else {}))
    return buf.getvalue()


def _own_format(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(32)
    return (sniff(head) or "png").upper()


def _act(check: FileCheck, mover: Quarantine | None) -> None:
    """Quarantine a bad file or put a fixed version in place (with `mover`), or say what would happen."""
    image, check.fixed_image = check.fixed_image, None  # never keep every fixed image in memory
    if not check.problems:
        return
    bad = any(p in QUARANTINED for p in check.problems)
    if mover is None:
        check.action = "would quarantine" if bad else "reported"
    elif bad:
        check.moved_to = mover.move("quarantine", check.file, check.problem, check.detail)
        check.action = f"quarantined ({check.moved_to})"
    elif image is not None:
        check.moved_to = mover.move("fix", check.file, check.problem, check.detail, image)
        check.action = f"fixed (original: {check.moved_to})"


def _remove_report_temps(root: Path) -> None:
    for tmp in root.glob(f".{REPORT_NAME}*.tmp"):  # a report being written when a run was killed
        tmp.unlink()


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
