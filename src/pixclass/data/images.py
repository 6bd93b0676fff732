"""The image policy, in one place: which files are images, how many pixels are too many, and how
any image becomes the upright RGB picture that training, verify, download and prediction all see.

Owns: `IMAGE_FORMATS`/`IMAGE_EXTENSIONS` (the files we read and the Pillow decoders allowed),
`MAX_PIXELS` (the decompression-bomb guard), `to_rgb` (palette, alpha, 16-bit, CMYK… → RGB),
and `open_image`, which reads a path, bytes, a file object, a PIL image or a numpy array with
JPEG `draft()` decoding and EXIF orientation, or raises a one-line `ImageReadError`.
`pixclass verify --fix` and `pixclass download --size/--pad` write their pixels through
`to_rgb`, so a fixed or downloaded file reads as the picture its original gave.

Torch-free (the ONNX predictor and the CLI's start-up import it); numpy only when needed.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from pixclass.data.sniff import describe
from pixclass.errors import ImageReadError

if TYPE_CHECKING:
    import numpy as np

# File extension → the Pillow decoder that reads it. Only these decoders are ever tried, whatever
# a file is called: an upload or a `.jpg` holding an EPS never reaches Ghostscript, and training
# reads exactly the formats `pixclass verify` checks (its magic-byte sniffing knows these).
IMAGE_FORMATS: dict[str, str] = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",  # JPEG's four spellings
    ".png": "PNG",  # also APNG (first frame)
    ".gif": "GIF",  # first frame
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF",
    ".ppm": "PPM", ".pgm": "PPM",  # Netpbm colour and grey, what scientific tools write
}
IMAGE_EXTENSIONS = frozenset(IMAGE_FORMATS)
DECODERS = tuple(sorted(set(IMAGE_FORMATS.values())))

# Pillow's own DecompressionBombWarning threshold (1024³ / 4 / 3: a 9,459 × 9,459 picture). Every
# path already refused bigger images in practice (training turned that warning into an error,
# verify and download had this default), so choosing it moved no file from readable to refused.
# Measured with `open_image` on 9,459 × 9,459 files (peak RSS, Python and Pillow included): RGB PNG
# 0.38 GB, baseline JPEG 0.38 GB, 16-bit grey PNG 1.0 GB — per DataLoader worker. Raising it
# raises that; larger photos (100 MP medium format) are refused with a message naming the limit.
MAX_PIXELS = 89_478_485

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], Image.Image, "np.ndarray"]

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})
_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_DATA_HINT = f"Send the bytes of a whole image file ({', '.join(DECODERS[:-1])} or {DECODERS[-1]})."
_ARRAY_HINT = ("Pass an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with dtype uint8, "
               "uint16, bool, or float with values in 0..1.")


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension (hidden files excluded)."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def open_image(source: ImageSource, min_size: int | None = None, name: str | None = None) -> Image.Image:
    """Read an image as an upright RGB picture (a new image: `source` is never changed).

    Args:
        source: a file path; the bytes of an image file (`bytes`, `bytearray`, `memoryview`) or a
            binary file object; a PIL image; or a numpy array of shape (H, W) grey, (H, W, 3) RGB
            or (H, W, 4) RGBA, of dtype uint8, uint16 (grey scaled like 16-bit files), bool, or
            float with values in 0..1.
        min_size: when given, JPEGs are decoded at the smallest DCT scale whose shorter side
            is still at least `min_size` pixels (`Image.draft`): several times faster for
            large photos that will be resized anyway.
        name: what errors call a source that is not a path (e.g. an upload's file name);
            default `<bytes>`, `<stream>`, `<array>`, or a PIL image's file name.

    Raises:
        ImageReadError: the source is missing, empty, not an image, truncated, of an unsupported
            kind, or has more than `MAX_PIXELS` pixels.
        TypeError: `source` is none of the kinds above.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _decode(path, str(path), None, min_size, lambda: describe_content(path))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _decode(io.BytesIO(data), name or "<bytes>", _DATA_HINT, min_size,
                       lambda: describe(data[:512], len(data)))
    if isinstance(source, Image.Image):
        return _from_pil(source, name or getattr(source, "filename", "") or "<image>")
    if _is_array(source):
        return _from_array(source, name or "<array>")
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"open_image: the file object gave {type(data).__name__}, not bytes; "
                            "open it in binary mode ('rb')")
        label = name or (source.name if isinstance(getattr(source, "name", None), str) else "<stream>")
        return _decode(io.BytesIO(data), label, _DATA_HINT, min_size, lambda: describe(data[:512], len(data)))
    raise TypeError(f"open_image: cannot read a {type(source).__name__}; pass a path, bytes, a binary "
                    "file object, a PIL image or a numpy array")


def _decode(fp: Path | IO[bytes], label: str, hint: str | None, min_size: int | None,
            what_is_it) -> Image.Image:
    """Decode a file or a byte stream with the bomb guard, `draft`, EXIF orientation and `to_rgb`."""
    try:
        with warnings.catch_warnings():
            # MAX_PIXELS is checked below, with a message naming the size and the limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp, formats=DECODERS) as img:
                _check_pixels(img.size, label, hint)
                if min_size and img.format == "JPEG":
                    w, h = img.size
                    scale = max(1.0, min(w, h) / min_size)
                    img.draft("RGB", (int(w / scale), int(h / scale)))
                img.load()
                ImageOps.exif_transpose(img, in_place=True)
                rgb = to_rgb(img)
                # `img` is ours: returned as is (no copy: 358 MB of RGB at MAX_PIXELS) unless it is a
                # read-only map of the file (raw PPM/BMP), which a later rewrite would change.
                return rgb.copy() if rgb.readonly else rgb
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(label, "file not found", hint) from None
    except IsADirectoryError:
        raise ImageReadError(label, "is a directory, not an image", hint) from None
    except UnidentifiedImageError:
        raise ImageReadError(label, f"not an image ({what_is_it()})", hint) from None
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow refuses these before we see the size
        raise ImageReadError(label, f"more than {limit:,} pixels (Pillow's bomb limit)", hint) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = "truncated file" if "truncated" in str(err).lower() else f"corrupt ({err})"
        raise ImageReadError(label, reason, hint) from None


def _check_pixels(size: tuple[int, ...], label: str, hint: str | None) -> None:
    w, h = size[0], size[1]  # (width, height), as PIL gives it
    if w * h > MAX_PIXELS:
        raise ImageReadError(label, f"{w}×{h} pixels is more than the limit of {MAX_PIXELS:,}", hint)


def _from_pil(img: Image.Image, label: str) -> Image.Image:
    hint = None if getattr(img, "filename", "") else _DATA_HINT
    _check_pixels(img.size, label, hint)
    try:
        return to_rgb(ImageOps.exif_transpose(img))  # exif_transpose returns a copy
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = "truncated file" if "truncated" in str(err).lower() else f"cannot convert to RGB ({err})"
        raise ImageReadError(label, reason, hint) from None


def _is_array(source: object) -> bool:
    numpy = sys.modules.get("numpy")  # an array exists only if numpy was imported
    return numpy is not None and isinstance(source, numpy.ndarray)


def _from_array(arr: np.ndarray, label: str) -> Image.Image:
    """An RGB copy of a numpy image (see `open_image` for the shapes and dtypes accepted)."""
    import numpy as np

    shape, dtype = arr.shape, arr.dtype
    if not (arr.ndim == 2 or (arr.ndim == 3 and shape[2] in (1, 3, 4))) or 0 in shape[:2]:
        raise ImageReadError(label, f"an array of shape {shape} is not an image", _ARRAY_HINT)
    _check_pixels((shape[1], shape[0]), label, _ARRAY_HINT)
    grey = arr.ndim == 2 or shape[2] == 1
    if arr.ndim == 3 and grey:
        arr = arr[..., 0]
    if dtype == np.bool_:
        out = np.where(arr, np.uint8(255), np.uint8(0))
    elif dtype == np.uint8:
        out = np.array(arr, order="C")  # a copy: the picture never shares the caller's memory
    elif dtype == np.uint16:
        if grey:  # exactly what a 16-bit grey file gives: scaled by its actual range
            return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))
        out = (arr >> 8).astype(np.uint8)  # as Pillow reads 16-bit RGB(A) files: the high byte
    elif dtype.kind == "f":
        lo, hi = float(arr.min()), float(arr.max())
        if not (0.0 <= lo and hi <= 1.0):  # also false for NaN
            raise ImageReadError(label, f"a float array must hold values in 0..1, got {lo:g}..{hi:g}",
                                 _ARRAY_HINT)
        out = np.rint(arr * 255.0).astype(np.uint8)
    else:
        raise ImageReadError(label, f"an array of dtype {dtype} is not an image", _ARRAY_HINT)
    return to_rgb(Image.fromarray(out))  # (H, W) → L, (H, W, 3) → RGB, (H, W, 4) → RGBA


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as RGB; the image itself when it already is RGB without a transparent colour.

    Transparency (an alpha channel, a palette's or a grey/RGB image's transparent colour) is
    composited on white; 16/32-bit grey and float images are scaled from their actual range to
    0..255 (a flat one from the 16-bit range, or 0..1 for float); palette, CMYK, YCbCr, LAB, 1-bit
    and grey images are converted by Pillow.
    """
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in _DEEP_MODES:
        return _deep_to_grey(img).convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _deep_to_grey(img: Image.Image) -> Image.Image:
    """16/32-bit or float grey → 8-bit grey, the actual range stretched to 0..255.

    `convert("L")` would clip everything above 255 to white (16-bit) or truncate floats.
    """
    import numpy as np

    arr = np.array(img, dtype=np.float64 if img.mode == "I" else np.float32)  # (H, W), our copy
    if img.mode == "F":
        arr[~np.isfinite(arr)] = np.nan  # ±inf would leave no range; NaN pixels end up black
    lo, hi = (float(np.nanmin(arr)), float(np.nanmax(arr))) if not np.isnan(arr).all() else (0.0, 0.0)
    if hi > lo:
        arr -= lo
        arr *= 255.0 / (hi - lo)
    else:  # no range to stretch: place the one value on the nominal scale
        arr *= 255.0 if img.mode == "F" else 1 / 257
    np.rint(arr, out=arr)
    np.clip(arr, 0, 255, out=arr)
    np.nan_to_num(arr, copy=False, nan=0.0)  # NaN pixels (float images) become black
    return Image.fromarray(arr.astype(np.uint8))


def describe_content(path: str | os.PathLike) -> str:
    """A short guess at what a non-image file is, for error messages ("HTML page, 2.1 kB")."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return "unreadable"
    return describe(head, size)
