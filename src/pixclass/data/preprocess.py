"""Evaluation preprocessing, the one implementation: upright RGB picture → normalized float32 array.

Owns how an image becomes model input outside training's random augmentation: `fit_square`
brings a picture to `size`×`size` by one of the resize methods (`resize.RESIZE_METHODS`, fastai's
`ResizeMethod`) with Pillow's bilinear filter (antialiased when shrinking):

- "crop": resize the shorter side to `size`, center-crop a square (the sides of a wide picture
  are lost);
- "pad": resize the longer side to `size`, pad to a square by reflection (everything kept, smaller);
- "squish": resize to `size`×`size`, ignoring the aspect ratio (everything kept, distorted).

`eval_array` then scales to 0..1 and normalizes per channel. Validation during training
(`augment.eval_transform`), the feature cache, the torch predictor, the ONNX Runtime predictor and
the server all call this, so what a run reports and what its exported model predicts start from
the same numbers. Training with "pad" or "squish" starts from `square_at_full_size`, the same
square before it is resized.
Torch-free: the ONNX path never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from pixclass.data.resize import DEFAULT_RESIZE, check_resize
from pixclass.errors import PixclassError

# "pad" fills by reflection, fastai's default `PadMode.Reflection` (v1 and v2), rather than zeros:
# measured by benchmarks/bench_resize.py, the linear probe with black borders → mirrored ones
# (mean of 5 seeds): photo patches 86.5 → 91.8 %, Fashion-MNIST composites 66.1 → 69.3 %, digit
# composites 59.7 → 57.6 %: black bars cost most on real photos.
PAD_MODE = "reflect"


def resized_size(width: int, height: int, size: int, method: str = DEFAULT_RESIZE) -> tuple[int, int]:
    """(width, height) before a square is cut or padded: "crop" makes the shorter side `size`,
    "pad" the longer one, the other side keeping the aspect ratio (truncated, as torchvision's
    `Resize(int)` computes it, at least 1 px); "squish" is (size, size)."""
    if method == "squish":
        return size, size
    if (width <= height) == (method == "crop"):
        return size, max(1, int(size * height / width))
    return max(1, int(size * width / height)), size


def fit_square(img: Image.Image, size: int, method: str = DEFAULT_RESIZE) -> Image.Image:
    """`img` (RGB) as a `size`×`size` picture by `method` ("crop", "pad" or "squish")."""
    check_resize(method)
    w, h = resized_size(img.width, img.height, size, method)
    if (w, h) != img.size:
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    if (w, h) == (size, size):
        return img
    if method == "pad":
        return _pad_square(img, size, -left, -top)
    return img.crop((left, top, left + size, top + size))


def _pad_square(img: Image.Image, side: int, left: int, top: int) -> Image.Image:
    """`img` placed at (left, top) of a `side` square, the rest filled by reflection (mirrored
    again past the picture's far edge; a 1-px side is repeated)."""
    w, h = img.size
    pad = ((top, side - h - top), (left, side - w - left), (0, 0))
    return Image.fromarray(np.pad(np.asarray(img), pad, mode=PAD_MODE), "RGB")


def square_at_full_size(img: Image.Image, method: str) -> Image.Image:
    """`img` (RGB) made square at its own resolution, side max(width, height): "pad" reflects it
    into the borders as `fit_square` does, "squish" stretches the shorter side. Training's random crop is
    taken from this square, so it resizes once, from all the pixels (a square picture is returned
    as it is: it trains exactly as with "crop")."""
    w, h = img.size
    side = max(w, h)
    if w == h:
        return img
    if method == "squish":
        return img.resize((side, side), Image.Resampling.BILINEAR)
    if method != "pad":
        raise PixclassError(f"square_at_full_size pads or squishes, not {method!r}")
    return _pad_square(img, side, -round((w - side) / 2.0), -round((h - side) / 2.0))


def eval_array(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float],
               method: str = DEFAULT_RESIZE) -> np.ndarray:
    """`img` (RGB) brought to `size`×`size` by `method` (`fit_square`), as a normalized float32
    array of shape (3, size, size)."""
    img = fit_square(img, size, method)
    # (x / 255 - mean) / std as one multiply-add into a preallocated array, after transposing the
    # uint8 pixels: 0.085 ms for 224 px where four float passes and a float transpose took 0.81 ms
    # (a third of a prediction's CPU outside the network, measured on elpv cells).
    mean_, std_ = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    scale = (1 / (255 * std_)).astype(np.float32)[:, None, None]
    shift = (-mean_ / std_).astype(np.float32)[:, None, None]
    pixels = np.asarray(img).transpose(2, 0, 1)  # (3, H, W) uint8
    out = np.empty(pixels.shape, dtype=np.float32)
    np.multiply(pixels, scale, out=out)
    out += shift
    return out
