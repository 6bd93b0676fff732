"""`pixclass train --resize crop|pad|squish`: a bad value is a usage error naming the choices; the
method reaches config.json, the bundle and `pixclass info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from .conftest import TINY, run_cli


def test_a_bad_resize_value_is_a_usage_error_naming_the_choices(class_folders, tmp_path):
    res = run_cli("train", str(class_folders), *TINY, "--resize", "stretch", "--out", str(tmp_path / "run"))

    assert res.returncode == 2
    assert "'stretch' is not a resize method: choose one of crop, pad, squish" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "run").exists()


def test_the_train_help_names_the_methods_and_the_default():
    from pixclass.train.recipe import TrainConfig

    out = run_cli("train", "--help").stdout

    assert "--resize" in out and "squish" in out and f"[default: {TrainConfig.resize}]" in " ".join(out.split())


@pytest.mark.slow
def test_training_with_squish_records_it_in_the_config_the_bundle_and_info(class_folders, tmp_path):
    run = tmp_path / "run"
    res = run_cli("train", str(class_folders), *TINY, "--resize", "squish", "--epochs", "1", "--unfreeze-epochs",
                  "0", "--lr", "1e-2", "--no-report", "--out", str(run))
    assert res.returncode == 0, res.stderr

    with safe_open(str(run / "model.pixclass"), framework="pt") as f:
        meta = json.loads(f.metadata()["pixclass"])
    info = run_cli("info", str(Path(run) / "model.pixclass")).stdout

    assert json.loads((run / "config.json").read_text())["resize"] == "squish"
    assert meta["resize"] == "squish"
    assert "input: 32x32 px, resize squish: stretched to the square" in info
