"""Recognising and preparing downloaded image bytes: magic-byte sniffing, one decode, resize.

The server's Content-Type is never trusted: the first bytes say what a file is. A kept image
has been fully decoded once by Pillow (which also gives its size); with `size` it is shrunk to
that longest side (EXIF orientation applied first, since re-encoding drops the tag) and, with
`pad`, centred on a black square.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

from pixclass.data.sniff import describe, human_bytes, sniff  # noqa: F401  (used by download/verify)

# Pillow's own warning threshold: ~89 MP, a 9,500 × 9,500 picture.
DEFAULT_MAX_PIXELS = 89_478_485

EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif"}


class ImageProblem(Exception):
    """Bytes that are not a usable image; the message is the manifest's `error` text."""


@contextmanager
def truncated_images_rejected() -> Iterator[None]:
    """Make Pillow raise on truncated data inside the block, whatever the caller had set."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved




@dataclass
class PreparedImage:
    data: bytes
    ext: str
    width: int
    height: int


def prepare(data: bytes, *, size: int | None = None, pad: bool = False,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> PreparedImage:
    """Check that `data` is a complete image (one full decode) and optionally resize it.

    Args:
        data: the downloaded bytes.
        size: shrink so the longest side is at most this (never enlarges); None keeps pixels.
        pad: also pad onto a black square (`size` × `size`, or the longest side without `size`).
        max_pixels: refuse larger images before decoding (decompression-bomb guard).
    """
    fmt = sniff(data[:32])
    if fmt is None:
        raise ImageProblem(f"not an image ({describe(data[:512], len(data))})")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageProblem(f"too large: {width}x{height} pixels (limit {max_pixels:,})")
            reencode = bool(size or pad)
            if fmt == "jpeg" and (size or not reencode):
                _draft_jpeg(im, size)
            im.load()
            if not reencode:
                return PreparedImage(data, EXTENSIONS[fmt], width, height)
            return _resized(im, fmt, size, pad)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as err:
        raise ImageProblem(f"too large: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageProblem(decode_error(fmt, err)) from None


def decode_error(fmt: str, err: Exception) -> str:
    """`truncated JPEG (...)` or `corrupt PNG (...)` from a Pillow decoding exception."""
    if isinstance(err, Image.UnidentifiedImageError):
        return f"corrupt {fmt.upper()} (Pillow cannot identify it)"
    kind = "truncated" if "truncat" in str(err).lower() or isinstance(err, EOFError) else "corrupt"
    return f"{kind} {fmt.upper()} ({err})"


def _draft_jpeg(im: Image.Image, size: int | None) -> None:
    """Ask for a DCT-scaled decode: every byte is still entropy-decoded (truncation is caught).

    Only checking needs no more than 1/8 scale and luma; resizing needs at least `size` pixels.
    """
    if size:
        im.draft("RGB", (size, size))
    else:
        im.draft("L" if im.mode == "RGB" else im.mode, (max(1, im.width // 8), max(1, im.height // 8)))


def _resized(im: Image.Image, fmt: str, size: int | None, pad: bool) -> PreparedImage:
    im = ImageOps.exif_transpose(im)
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    im = im.convert("RGBA" if has_alpha else "RGB")
    if size and max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    if pad:
        side = size or max(im.size)
        canvas = Image.new(im.mode, (side, side), (0, 0, 0, 255) if has_alpha else (0, 0, 0))
        canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
        im = canvas
    out_fmt = "png" if has_alpha or fmt in ("png", "gif", "bmp", "tiff") else fmt
    buf = io.BytesIO()
    im.save(buf, format=out_fmt.upper(), **({"quality": 90} if out_fmt in ("jpeg", "webp") else {}))
    return PreparedImage(buf.getvalue(), EXTENSIONS[out_fmt], im.width, im.height)
