"""Recognising and preparing downloaded image bytes: magic-byte sniffing, one decode, resize.

The server's Content-Type is never trusted: the first bytes say what a file is. A kept image
has been fully decoded once by Pillow (which also gives its size). Bytes are kept as they came
unless `size` must shrink them or `pad` square them; then the picture is made as training reads
it (`pixclass.data.images`: EXIF orientation, `to_rgb`), shrunk to `size` on its longest side
and, with `pad`, centred on a black square (a layout choice, not a colour one).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

from pixclass.data.images import MAX_PIXELS, to_rgb
from pixclass.data.sniff import describe, human_bytes, sniff  # noqa: F401  (used by download/verify)

# The extension a downloaded file gets, from its sniffed format: each one training reads.
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
            max_pixels: int = MAX_PIXELS) -> PreparedImage:
    """Check that `data` is a complete image (one full decode) and optionally resize it.

    Args:
        data: the downloaded bytes.
        size: shrink so the longest side is at most this (never enlarges); None, or an image
            already that small, keeps the bytes as they came.
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
            reencode = pad or bool(size and max(width, height) > size)
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
    im = to_rgb(ImageOps.exif_transpose(im))  # the picture training reads; transparency on white
    if size and max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    if pad:
        side = size or max(im.size)
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
        im = canvas
    out_fmt = "png" if fmt in ("png", "gif", "bmp", "tiff") else fmt  # lossless stays lossless
    buf = io.BytesIO()
    im.save(buf, format=out_fmt.upper(), **({"quality": 90} if out_fmt in ("jpeg", "webp") else {}))
    return PreparedImage(buf.getvalue(), EXTENSIONS[out_fmt], im.width, im.height)
