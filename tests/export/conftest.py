"""Fixtures of the export tests: one real bundle, trained once per test session, and an image of its classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefiles import SIZE, write_class_folders
from pixclass import ImageData
from test_bundle import trained


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    """A real bundle: timm's tiny test model trained 2 epochs on 3 colour classes (blue, green, red).

    Shared: tests read it and copy it before editing, never change it in place."""
    root = tmp_path_factory.mktemp("bundle")
    data = ImageData.from_folder(write_class_folders(root / "colours"), valid_pct=0.25, seed=0, size=SIZE,
                                 bs=6, num_workers=0)
    return trained(data, root).export(root / "colours.pixclass")


@pytest.fixture(scope="module")
def image(bundle: Path) -> Path:
    """An image of one of the bundle's classes."""
    return bundle.parent / "colours" / "blue" / "blue_0.jpg"
