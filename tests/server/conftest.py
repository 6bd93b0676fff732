"""Fixtures of the server tests: tiny exported models (single, multi-label, regression) and images.

Helpers (clients, a real server, the CLI) are in `server_helpers`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefiles import CLASS_COLOURS, jpeg_bytes
from server_helpers import write_bundle


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """task ("single", "multi", "regression") → a bundle file of a random-weight tiny model."""
    root = tmp_path_factory.mktemp("models")
    return {"single": write_bundle(root / "colours.pixclass", "single", sorted(CLASS_COLOURS)),
            "multi": write_bundle(root / "tags.pixclass", "multi", ["red", "green", "blue"], seed=1),
            "regression": write_bundle(root / "brightness.pixclass", "regression", [], seed=2)}


@pytest.fixture(scope="session")
def predictor(models):
    """The single-label model, loaded once."""
    from pixclass.export.predictor import load_model

    return load_model(models["single"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def images() -> dict[str, bytes]:
    """Three small JPEGs of different colours, by file name."""
    return {f"{name}.jpg": jpeg_bytes(colour, size=48, seed=i)
            for i, (name, colour) in enumerate(CLASS_COLOURS.items())}
