"""Tiny real image files for tests: coloured noise a tiny random-weight model can learn.

Images are a class colour plus noise (40 px). Imported by `tests/conftest.py` (fixtures) and by
tests that need to write extra files. Nothing here downloads anything.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# Three easily separable classes: the mean colour is the signal, the noise is the nuisance.
CLASS_COLOURS = {"blue": (40, 60, 210), "green": (50, 200, 60), "red": (210, 50, 40)}
CLASSES = sorted(CLASS_COLOURS)
TINY_ARCH = "test_efficientnet"  # timm's ~0.4M-parameter test model; random weights, no download
SIZE = 32

# Planet-style tags: a colour channel that is "on" is a tag.
PLANET_TAGS = ["red", "green", "blue"]
_TAG_SETS = [["red"], ["green"], ["blue"], ["red", "green"], ["green", "blue"], ["red", "blue"]]


def noise_image(colour: tuple[int, int, int], seed: int, size: int = 40) -> Image.Image:
    """An RGB image of `colour` plus uniform noise (±40 per channel)."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(colour, dtype=np.int16) + rng.integers(-40, 41, size=(size, size, 3), dtype=np.int16)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def save_image(path: Path, colour: tuple[int, int, int], seed: int, size: int = 40) -> Path:
    """Write a noise image; the format follows the suffix (JPEG or PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(colour, seed, size).save(path)
    return path


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: int = 40, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    noise_image(colour, seed, size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_class_folders(root: Path, n_per_class: int = 8, seed: int = 0) -> Path:
    """`root/<class>/<class>_<i>.<jpg|png>`: JPEG and PNG alternate."""
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(n_per_class):
            ext = "jpg" if i % 2 == 0 else "png"
            save_image(root / name / f"{name}_{i}.{ext}", colour, seed * 1000 + c * 100 + i)
    return root


def planet_tags(i: int) -> list[str]:
    """The tags of Planet-style image number `i`."""
    return _TAG_SETS[i % len(_TAG_SETS)]


def write_planet(root: Path, n: int = 24) -> Path:
    """`root/labels.csv` (`image_name,tags`, space-delimited, names without suffix) and
    `root/train-jpg/<name>.jpg`: a tag's colour channel is bright, the others dark."""
    lines = ["image_name,tags"]
    for i in range(n):
        tags = planet_tags(i)
        colour = tuple(220 if t in tags else 30 for t in PLANET_TAGS)
        save_image(root / "train-jpg" / f"train_{i}.jpg", colour, 500 + i)
        lines.append(f"train_{i},{' '.join(tags)}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def write_brightness(root: Path, n: int = 20) -> Path:
    """`root/labels.csv` (`name,brightness,is_valid`) for `root/images/grey_<i>.png`: the target
    is the grey level / 255; every fifth image is a validation image."""
    lines = ["name,brightness,is_valid"]
    for i in range(n):
        level = 20 + i * 11
        save_image(root / "images" / f"grey_{i}.png", (level, level, level), 700 + i)
        lines.append(f"grey_{i}.png,{level / 255:.4f},{'true' if i % 5 == 0 else 'false'}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root
