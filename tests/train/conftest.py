"""Fixtures for the training tests: tiny ImageData sets and a factory of tiny Learners."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefiles import SIZE, TINY_ARCH
from pixclass import ImageData, Learner
from pixclass.train.checkpoint import seed_everything


@pytest.fixture
def colour_data(class_folders: Path) -> ImageData:
    """3 colour classes, 18 train / 6 valid, 32 px, batches of 6, no worker processes."""
    return ImageData.from_folder(class_folders, valid_pct=0.25, seed=0, size=SIZE, bs=6, num_workers=0)


@pytest.fixture
def make_learner(tmp_path: Path):
    """`make_learner(data, **kwargs)`: a seeded Learner on timm's tiny random-weight test model."""

    def make(data: ImageData, seed: int = 0, **kwargs) -> Learner:
        seed_everything(seed)
        kwargs.setdefault("path", tmp_path / "run")
        return Learner(data, arch=TINY_ARCH, pretrained=False, progress=False, **kwargs)

    return make
