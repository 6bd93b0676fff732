"""`pixclass train / predict / export` from the command line, on data the tests make."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY, run_cli


def test_help_lists_the_verbs_without_importing_torch():
    code = ("import sys; from pixclass.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "train" in out and "predict" in out and "demo" in out
    assert out.strip().endswith("NO-TORCH")


def test_train_on_class_folders_writes_a_complete_run(class_folders: Path, tmp_path: Path):
    run = tmp_path / "run"
    res = run_cli("train", str(class_folders), *TINY, "--epochs", "3", "--unfreeze-epochs", "1", "--out", str(run))
    assert res.returncode == 0, res.stderr
    for name in ("config.json", "history.csv", "summary.json", "model.pixclass",
                 "plots/lr_find.png", "plots/losses.png", "plots/lr.png", "checkpoints/final.safetensors"):
        assert (run / name).is_file(), name
    history = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == ["blue", "green", "red"] and config["resolved_lr"] > 0
    assert "valid:" in res.stdout and "accuracy" in res.stdout


def test_predict_folder_writes_csv_with_path_label_prob(class_folders: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert run_cli("train", str(class_folders), *TINY, "--epochs", "4", "--unfreeze-epochs", "0",
                   "--out", str(run)).returncode == 0
    out_csv = tmp_path / "preds.csv"
    res = run_cli("predict", str(run / "model.pixclass"), str(class_folders / "red"), "--csv", str(out_csv))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 16 and list(rows[0]) == ["path", "label", "prob", "error"]
    assert all(r["label"] in ("red", "green", "blue") and 0 <= float(r["prob"]) <= 1 for r in rows)
    assert sum(r["label"] == "red" for r in rows) >= 12  # colours are easy to tell apart


def test_planet_style_csv_trains_multilabel_and_predicts_tags(planet_csv: Path, tmp_path: Path):
    run = tmp_path / "planet_run"
    res = run_cli("train", str(planet_csv), "--folder", "train-jpg", "--label-delim", " ", *TINY,
                  "--epochs", "3", "--unfreeze-epochs", "0", "--out", str(run))
    assert res.returncode == 0, res.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == ["blue", "clear", "red"]
    assert "fbeta" in (run / "history.csv").read_text().splitlines()[0]
    out_csv = tmp_path / "tags.csv"
    img = planet_csv.parent / "train-jpg" / "train_0.jpg"
    assert run_cli("predict", str(run / "model.pixclass"), str(img), "--csv", str(out_csv)).returncode == 0
    label = next(csv.DictReader(out_csv.open()))["label"]
    assert set(label.split()) <= {"blue", "clear", "red"}


def test_killed_training_resumes_from_its_last_complete_epoch(class_folders: Path, tmp_path: Path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "pixclass", "train", str(class_folders), *TINY, "--epochs", "1",
            "--unfreeze-epochs", "6", "--out", str(run)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pointer = run / "checkpoints" / "last.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # wait for the first unfrozen epoch's checkpoint
            if pointer.exists() and json.loads(pointer.read_text())["stage_start"] == 1:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        assert proc.poll() is None, "training finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = json.loads(pointer.read_text())
    assert done["stage_start"] == 1 and done["epoch"] < 5
    assert not (run / "model.pixclass").exists()

    res = run_cli("train", "--resume", str(run))
    assert res.returncode == 0, res.stderr
    history = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in history] == list(range(7))
    assert (run / "model.pixclass").is_file()
    # only the newest epoch checkpoint is kept beside the named ones
    assert len(list((run / "checkpoints").glob("epoch-*.safetensors"))) == 1


def test_export_rewrites_the_model_of_a_run(class_folders: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert run_cli("train", str(class_folders), *TINY, "--epochs", "2", "--unfreeze-epochs", "0",
                   "--out", str(run)).returncode == 0
    (run / "model.pixclass").unlink()
    res = run_cli("export", str(run))
    assert res.returncode == 0, res.stderr
    assert (run / "model.pixclass").is_file() and "MB" in res.stdout


def test_a_second_train_into_the_same_run_refuses_instead_of_overwriting(class_folders: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert run_cli("train", str(class_folders), *TINY, "--epochs", "1", "--unfreeze-epochs", "0",
                   "--out", str(run)).returncode == 0
    before = (run / "model.pixclass").read_bytes()
    res = run_cli("train", str(class_folders), *TINY, "--epochs", "1", "--unfreeze-epochs", "0", "--out", str(run))
    assert res.returncode == 1 and "--resume" in res.stderr
    assert (run / "model.pixclass").read_bytes() == before


@pytest.mark.parametrize("args, expected", [
    (["train", "/no/such/folder"], "neither a folder of images nor a CSV"),
    (["train", "{data}", "--lr", "fast"], "--lr must be a number"),
    (["train", "{data}", "--arch", "resnet_nonexistent", "--no-pretrained"], "unknown architecture"),
    (["predict", "{data}/red/red_0.jpg", "{data}/red/red_1.jpg"], "not a pixclass model"),
    (["export", "{data}"], "not a training run"),
])
def test_bad_input_gives_one_clear_line(class_folders: Path, args: list[str], expected: str):
    res = run_cli(*[a.replace("{data}", str(class_folders)) for a in args])
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pixclass: ") and expected in lines[0], res.stderr


def test_an_unreadable_image_stops_training_with_the_file_name_and_verify_hint(class_folders: Path, tmp_path: Path):
    bad = class_folders / "red" / "broken.jpg"
    bad.write_text("<html><body>Not found</body></html>")
    res = run_cli("train", str(class_folders), *TINY, "--epochs", "1", "--unfreeze-epochs", "0",
                  "--out", str(tmp_path / "run"))
    assert res.returncode == 1
    line = res.stderr.strip().splitlines()[-1]
    assert "broken.jpg" in line and "HTML page" in line and "pixclass verify" in line
    assert "Traceback" not in res.stderr


def test_demo_never_removes_a_run_that_is_not_its_own(class_folders: Path, tmp_path: Path):
    run = tmp_path / "mine"
    assert run_cli("train", str(class_folders), *TINY, "--epochs", "1", "--unfreeze-epochs", "0",
                   "--out", str(run)).returncode == 0
    before = sorted(p.name for p in run.rglob("*"))
    res = run_cli("demo", "--out", str(run))
    assert res.returncode == 1 and "already holds a training run" in res.stderr
    assert sorted(p.name for p in run.rglob("*")) == before


def test_a_run_killed_between_stages_resumes_to_exactly_the_uninterrupted_model(class_folders: Path, tmp_path: Path):
    # Killed after the frozen stage's last checkpoint, before the stage's named save and the
    # next stage: the resumed run once took the unfrozen stage from another random state.
    from safetensors.torch import load_file

    from faults.killer import run_and_signal_when

    args = [*TINY, "--epochs", "2", "--unfreeze-epochs", "2", "--seed", "7"]
    assert run_cli("train", str(class_folders), *args, "--out", str(tmp_path / "alone")).returncode == 0
    run = tmp_path / "run"
    pointer = run / "checkpoints" / "last.json"

    def frozen_stage_done() -> bool:
        try:
            return json.loads(pointer.read_text())["epoch"] == 1
        except (OSError, ValueError):
            return False

    out = run_and_signal_when(["train", str(class_folders), *args, "--out", str(run)], frozen_stage_done,
                              signal.SIGKILL, poll=0.001)
    assert out.signalled and json.loads(pointer.read_text())["stage_start"] == 0
    assert run_cli("train", "--resume", str(run)).returncode == 0
    got, want = load_file(run / "model.pixclass"), load_file(tmp_path / "alone" / "model.pixclass")
    assert [k for k in want if not bool((got[k] == want[k]).all())] == []
