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
| animated    | several frames (only the first is used)            | kept; `fix`: 1st frame |
| odd_mode    | CMYK, 16-bit, alpha, palette with transparency...  | kept; `fix`: RGB       |
| rotated     | EXIF orientation other than 1                      | kept; `fix`: upright   |
| oversized   | longest side above `max_size`                      | kept; `fix`: shrunk    |
| unreadable  | the file cannot be opened (permissions...)         | kept, reported         |

Nothing is deleted: bad files move to `DIR/.quarantine/<same relative path>`, a fixed file's
original goes there too, and `DIR/verify.csv` lists every file checked (file, problem, action,
detail). Hidden files and folders (so `.quarantine` itself) are never scanned; files without an
image extension are checked only when their bytes are an image (so `manifest.csv` is left alone).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from PIL import Image, ImageOps

from pixclass.collect.imaging import DEFAULT_MAX_PIXELS, describe, sniff, truncated_images_rejected
from pixclass.collect.jpeg_skeleton import jpeg_skeleton, skeleton_decodes
from pixclass.collect.progress import counting_progress
from pixclass.errors import PixclassError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
QUARANTINE_DIR = ".quarantine"
REPORT_NAME = "verify.csv"
QUARANTINED = ("zero_bytes", "not_image", "truncated", "corrupt", "too_large")
FIXABLE = ("animated", "odd_mode", "rotated", "oversized")
_PLAIN_MODES = {"RGB", "L"}


@dataclass
class FileCheck:
    """The verdict on one file; `problems` is empty for a good image."""

    file: str  # relative to the verified folder, with `/`
    problems: list[str] = field(default_factory=list)
    detail: str = ""
    action: str = "kept"
    fixed_tmp: str = ""  # a worker's rewritten version, waiting to replace the file

    @property
    def problem(self) -> str:
        return ";".join(self.problems) or "ok"


@dataclass
class VerifyReport:
    """Every file's verdict, with the report's and the quarantine's locations."""

    root: Path
    checks: list[FileCheck]
    report: Path
    quarantine: Path

    def count(self, what: str) -> int:
        """How many files have problem `what` (or `ok`), or had action `what`."""
        return sum(what in c.problems or c.problem == what or c.action == what for c in self.checks)

    def __str__(self) -> str:
        problems = Counter(p for c in self.checks for p in c.problems or ["ok"])
        actions = Counter(c.action for c in self.checks)
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
    """
    root = Path(folder)
    if not root.is_dir():
        raise PixclassError(f"cannot verify '{root}': not a folder")
    if max_size is not None and max_size <= 0:
        raise PixclassError(f"max_size must be a positive number of pixels, got {max_size}")
    files = find_candidates(root)
    check = partial(check_file, root=root, max_pixels=max_pixels, max_size=max_size, fix=fix and quarantine,
                    full_decode=full_decode)
    checks: list[FileCheck] = []
    counts = {"ok": 0, "problems": 0}
    with counting_progress("verify", len(files), list(counts), progress) as update:
        for result in _map(check, files, workers):
            checks.append(result)
            counts["problems" if result.problems else "ok"] += 1
            update(**counts)
    qdir = root / QUARANTINE_DIR
    for c in checks:
        _act(root, qdir, c, quarantine)
    report = root / REPORT_NAME
    _write_report(report, checks)
    return VerifyReport(root=root, checks=checks, report=report, quarantine=qdir)


def find_candidates(root: Path) -> list[str]:
    """Relative paths of the files to check: images by extension, or by content; no hidden ones."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            if not path.is_file():  # a FIFO or socket named .jpg would block a read forever
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS or _looks_like_image(path):
                found.append(path.relative_to(root).as_posix())
    return found


def _looks_like_image(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return sniff(fh.read(32)) is not None
    except OSError:
        return False


def _map(check: partial, files: list[str], workers: int | None):
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < 8:  # a pool costs more than it saves here
        yield from map(check, files)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(check, files, chunksize=max(1, min(32, len(files) // (workers * 8))))


def check_file(rel: str, *, root: Path, max_pixels: int, max_size: int | None, fix: bool,
               full_decode: bool = False) -> FileCheck:
    """Classify one file (and, with `fix`, write its repaired version next to it)."""
    path = root / rel
    try:
        problems, detail = classify(path, max_pixels=max_pixels, max_size=max_size, full_decode=full_decode)
    except Exception as err:  # noqa: BLE001 - e.g. no permission: report it, never stop the run
        return FileCheck(rel, ["unreadable"], f"{type(err).__name__}: {err}")
    result = FileCheck(rel, problems, detail)
    if fix and problems and set(problems) <= set(FIXABLE):
        result.fixed_tmp = _write_fixed(path, max_size)
    return result


def classify(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_size: int | None = None,
             full_decode: bool = False) -> tuple[list[str], str]:
    """The problems of one image file and a human-readable detail ([] and "" when fine)."""
    size = path.stat().st_size
    if size == 0:
        return ["zero_bytes"], "empty file"
    with path.open("rb") as fh:
        head = fh.read(512)
    fmt = sniff(head)
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


def _write_fixed(path: Path, max_size: int | None) -> str:
    """Write an RGB, upright, single-frame, shrunk copy beside `path`; return its name."""
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
    tmp = path.with_name(f".{path.name}.fixed")
    buf = io.BytesIO()
    im.save(buf, format=out_fmt, **({"quality": 95} if out_fmt in ("JPEG", "WEBP") else {}))
    tmp.write_bytes(buf.getvalue())
    return tmp.name


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


def _act(root: Path, qdir: Path, check: FileCheck, quarantine: bool) -> None:
    bad = any(p in QUARANTINED for p in check.problems)
    if not check.problems:
        return
    if not quarantine:
        check.action = "would quarantine" if bad else "reported"
        return
    if bad or check.fixed_tmp:
        moved = _move_to_quarantine(root, qdir, check.file)
        if check.fixed_tmp:
            os.replace((root / check.file).with_name(check.fixed_tmp), root / check.file)
            check.action = f"fixed (original: {moved})"
        else:
            check.action = f"quarantined ({moved})"
        _log_quarantine(qdir, check, moved)


def _move_to_quarantine(root: Path, qdir: Path, rel: str) -> str:
    """Move `root/rel` under `qdir` keeping its relative path; never overwrite. Returns new path."""
    dest = qdir / rel
    stem, suffix = dest.stem, dest.suffix
    for n in range(1, 100_000):
        if not dest.exists():
            break
        dest = dest.with_name(f"{stem}-{n}{suffix}")
    else:
        raise PixclassError(f"too many quarantined copies of '{rel}' in '{qdir}'; empty it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(root / rel), str(dest))
    return dest.relative_to(root).as_posix()


def _log_quarantine(qdir: Path, check: FileCheck, moved: str) -> None:
    log = qdir / "quarantine.csv"
    new = not log.exists()
    with log.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["file", "moved_to", "problem", "detail"])
        writer.writerow([check.file, moved, check.problem, check.detail])


def _write_report(path: Path, checks: list[FileCheck]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "problem", "action", "detail"])
        for c in checks:
            writer.writerow([c.file, c.problem, c.action, c.detail])
    os.replace(tmp, path)
