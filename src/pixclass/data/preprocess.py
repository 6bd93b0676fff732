"""Evaluation preprocessing, the one implementation: upright RGB picture → normalized float32 array.

Owns how an image becomes model input outside training's random augmentation: resize the shorter
side to `size` (Pillow's bilinear filter, antialiased when shrinking), center-crop a square,
scale to 0..1 and normalize per channel. Validation during training (`augment.eval_transform`),
the feature cache, the torch predictor, the ONNX Runtime predictor and the server all call this,
so what a run reports and what its exported model predicts start from the same numbers. Torch-free:
the ONNX path never imports torch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side `size` and the aspect ratio kept (the longer side
    truncated, as torchvision's `Resize(int)` computes it)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def eval_array(img: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """`img` (RGB) as a normalized float32 array of shape (3, size, size)."""
    w, h = resized_size(img.width, img.height, size)
    if (w, h) != img.size:
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    if (w, h) != (size, size):
        img = img.crop((left, top, left + size, top + size))
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
