"""Safe image reading: one function that turns a file into an upright RGB PIL image or a clear error.

Owns: the decompression-bomb guard, JPEG `draft()` downscaled decoding, EXIF orientation,
mode conversion (palette, alpha, 16-bit, CMYK → RGB) and the one-line error that names the
file and what is wrong with it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from pixclass.data.sniff import describe
from pixclass.errors import ImageReadError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
# Larger than any camera (≈ 16k × 11k) but far below what would exhaust memory when decoded.
MAX_PIXELS = 178_956_970


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension (hidden files excluded)."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def open_image(path: str | os.PathLike, min_size: int | None = None) -> Image.Image:
    """Read an image file as an upright RGB image.

    Args:
        path: the image file.
        min_size: when given, JPEGs are decoded at the smallest DCT scale whose shorter side
            is still at least `min_size` pixels (`Image.draft`): several times faster for
            large photos that will be resized anyway.

    Raises:
        ImageReadError: the file is missing, empty, not an image, truncated or too large.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            _check_pixels(img)
            if min_size and img.format == "JPEG":
                w, h = img.size
                scale = max(1.0, min(w, h) / min_size)
                img.draft("RGB", (int(w / scale), int(h / scale)))
            img.load()
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, f"not an image ({describe_content(path)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(path, "too many pixels (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = "truncated file" if "truncated" in str(err).lower() else f"corrupt ({err})"
        raise ImageReadError(path, reason) from None
    return to_rgb(ImageOps.exif_transpose(img))


def _check_pixels(img: Image.Image) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageReadError(
            img.filename, f"{w}×{h} pixels is more than the limit of {MAX_PIXELS:,}"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode to RGB: transparency composited on white, 16-bit scaled to 8-bit."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale the actual range to 0..255 instead of clipping at 255.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else arr * 0
        img = Image.fromarray(arr.astype("uint8"), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def describe_content(path: str | os.PathLike) -> str:
    """A short guess at what a non-image file is, for error messages ("HTML page, 2.1 kB")."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return "unreadable"
    return describe(head, size)
