"""Shared fixtures: tiny real image files in tmp dirs, in every layout the data factories read.

The helpers that write them live in `tests/imagefiles.py` (importable from any test).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefiles import CLASS_COLOURS, jpeg_bytes, save_image, write_brightness, write_class_folders, write_planet


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """One folder per class (blue, green, red), 8 images each, JPEG and PNG."""
    return write_class_folders(tmp_path / "colours")


@pytest.fixture
def imagenet_folders(tmp_path: Path) -> Path:
    """ImageNet layout: `train/<class>/` (6 each), `valid/<class>/` (2 each), `test/` (3 unlabelled)."""
    root = tmp_path / "imagenet"
    write_class_folders(root / "train", 6, seed=1)
    write_class_folders(root / "valid", 2, seed=2)
    for i, colour in enumerate(CLASS_COLOURS.values()):
        save_image(root / "test" / f"unknown_{i}.jpg", colour, 9000 + i)
    return root


@pytest.fixture
def planet_csv(tmp_path: Path) -> Path:
    """A Planet-style multi-label set (see `imagefiles.write_planet`); returns its folder."""
    return write_planet(tmp_path / "planet")


@pytest.fixture
def regression_csv(tmp_path: Path) -> Path:
    """A regression set with float targets and an is_valid column; returns its folder."""
    return write_brightness(tmp_path / "brightness")


@pytest.fixture
def broken_files(tmp_path: Path) -> dict[str, Path]:
    """Files named like images that are not readable ones: empty, an HTML page, a truncated JPEG."""
    root = tmp_path / "broken"
    root.mkdir()
    empty = root / "empty.jpg"
    empty.write_bytes(b"")
    html = root / "page.jpg"
    html.write_text("<!DOCTYPE html><html><head><title>Not Found</title></head><body>404</body></html>\n")
    truncated = root / "truncated.jpg"
    truncated.write_bytes(jpeg_bytes(size=64)[:600])
    return {"empty": empty, "html": html, "truncated": truncated}


@pytest.fixture(scope="session")
def colour_learner(tmp_path_factory):
    """timm's tiny test model trained 2 epochs (seeded) on the colour folders, once per session.

    Shared: tests read its predictions and export it, never train it further."""
    from imagefiles import SIZE, TINY_ARCH
    from pixclass import ImageData, Learner
    from pixclass.train.checkpoint import seed_everything

    tmp = tmp_path_factory.mktemp("colour_learner")
    data = ImageData.from_folder(write_class_folders(tmp / "colours"), valid_pct=0.25, seed=0, size=SIZE,
                                 bs=6, num_workers=0)
    seed_everything(0)
    learn = Learner(data, arch=TINY_ARCH, pretrained=False, path=tmp / "run", progress=False)
    learn.fit_one_cycle(2, lr=1e-2)
    return learn
