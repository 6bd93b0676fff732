"""Fixtures for command-line tests: tiny image datasets on disk and a way to run `pixclass`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imagefiles import save_image

COLORS = {"red": (200, 40, 40), "green": (40, 180, 40), "blue": (40, 40, 200)}
TINY = ["--arch", "test_efficientnet", "--no-pretrained", "--size", "32", "--bs", "8", "--workers", "0"]


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """data/<red|green|blue>/*.jpg, 16 images each."""
    root = tmp_path / "data"
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(16):
            save_image(root / name / f"{name}_{i}.jpg", color, seed=c * 100 + i)
    return root


@pytest.fixture
def planet_csv(tmp_path: Path) -> Path:
    """Planet-style: train.csv (image_name, tags space-separated) + train-jpg/<name>.jpg."""
    rows = ["image_name,tags"]
    for i in range(48):
        tags = [t for t, on in (("red", i % 2 == 0), ("blue", i % 3 == 0)) if on] or ["clear"]
        color = tuple(int(np.mean([COLORS.get(t, (128, 128, 128))[c] for t in tags])) for c in range(3))
        save_image(tmp_path / "planet" / "train-jpg" / f"train_{i}.jpg", color, seed=1000 + i)
        rows.append(f"train_{i},{' '.join(tags)}")
    csv = tmp_path / "planet" / "train.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m pixclass ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "pixclass", *args], check=False, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A run of `pixclass train` on colour folders (3 classes, 32 px), trained once per session.

    Shared by the tests of the verbs that use a finished run (predict, info, interpret): they add
    files to it (model.onnx, interpret/) but never change what training wrote."""
    from imagefiles import write_class_folders

    root = tmp_path_factory.mktemp("cli_run")
    data = write_class_folders(root / "data", 6)
    res = run_cli("train", str(data), *TINY, "--epochs", "3", "--unfreeze-epochs", "0", "--lr", "1e-2",
                  "--out", str(root / "run"))
    assert res.returncode == 0, res.stderr
    return root / "run"
