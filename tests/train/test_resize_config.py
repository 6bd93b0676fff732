"""`TrainConfig.resize`: the default, runs from before it (config.json without it: "crop"), and
passing it to the data."""

from __future__ import annotations

import json
from pathlib import Path

from pixclass.data.resize import DEFAULT_RESIZE
from pixclass.train.recipe import TrainConfig, build_data


def test_a_new_config_takes_the_measured_default():
    assert TrainConfig(data="x").resize == DEFAULT_RESIZE


def test_a_run_from_before_the_resize_field_loads_as_crop(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(data="x", resize="squish").save(run)
    doc = json.loads((run / "config.json").read_text())
    del doc["resize"]
    (run / "config.json").write_text(json.dumps(doc))

    assert TrainConfig.load(run).resize == "crop"


def test_a_saved_method_loads_back(tmp_path):
    (tmp_path / "run").mkdir()
    TrainConfig(data="x", resize="pad").save(tmp_path / "run")

    assert TrainConfig.load(tmp_path / "run").resize == "pad"


def test_the_config_s_method_reaches_the_data(tmp_path):
    from imagefiles import write_class_folders

    folder = write_class_folders(Path(tmp_path) / "data", 4)

    data = build_data(TrainConfig(data=str(folder), resize="pad", size=32, num_workers=0))

    assert data.resize == "pad"
