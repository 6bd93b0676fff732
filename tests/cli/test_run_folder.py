"""A run folder is the user's only output: locked, never written over, relocatable, and its files checked."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pixclass.train.runfolder import LOCK, RunLock

from .conftest import TINY, run_cli

QUICK = [*TINY, "--epochs", "2", "--unfreeze-epochs", "0"]


def _one_line_error(res: subprocess.CompletedProcess, expected: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and lines[0].startswith("pixclass: ") and expected in lines[0], res.stderr


@pytest.fixture
def finished_run(class_folders: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    res = run_cli("train", str(class_folders), *QUICK, "--out", str(run))
    assert res.returncode == 0, res.stderr
    return run


def test_a_second_process_training_into_a_locked_run_is_refused_naming_the_holder(class_folders, tmp_path):
    run = tmp_path / "run"
    with RunLock(run):
        res = run_cli("train", str(class_folders), *QUICK, "--out", str(run))
    _one_line_error(res, f"is in use by another pixclass process (PID {os.getpid()} on ")
    assert sorted(p.name for p in run.iterdir()) == [LOCK]


def test_a_lock_left_by_a_dead_process_does_not_block_the_next_run(class_folders, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": 999_999_999, "host": "gone", "since": "yesterday"}))
    res = run_cli("train", str(class_folders), *QUICK, "--out", str(run))
    assert res.returncode == 0, res.stderr
    assert (run / "model.pixclass").is_file()


def test_export_of_a_run_in_use_is_refused(finished_run: Path):
    with RunLock(finished_run):
        res = run_cli("export", str(finished_run))
    _one_line_error(res, "is in use by another pixclass process")


def test_a_non_empty_folder_that_is_not_a_run_is_refused_and_left_untouched(class_folders, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "history.csv").write_text("my,data\n")
    res = run_cli("train", str(class_folders), *QUICK, "--out", str(mine))
    _one_line_error(res, "is a non-empty folder that is not a pixclass run")
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "history.csv"]
    assert (mine / "config.json").read_text() == '{"my": "settings"}'


def test_overwrite_lets_a_run_use_a_non_empty_folder_and_keeps_files_it_does_not_write(class_folders, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    res = run_cli("train", str(class_folders), *QUICK, "--out", str(mine), "--overwrite")
    assert res.returncode == 0, res.stderr
    assert (mine / "model.pixclass").is_file() and (mine / "notes.txt").read_text() == "keep me"


def test_overwrite_starts_a_finished_run_again_from_scratch(finished_run: Path, class_folders):
    res = run_cli("train", str(class_folders), *TINY, "--epochs", "1", "--unfreeze-epochs", "0",
                  "--out", str(finished_run), "--overwrite")
    assert res.returncode == 0, res.stderr
    history = (finished_run / "history.csv").read_text().splitlines()
    assert len(history) == 2  # the header and the one epoch of the new run


def test_a_moved_run_resumes_into_its_new_folder_from_any_working_directory(finished_run: Path, tmp_path):
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(finished_run), moved)
    (moved / "model.pixclass").unlink()
    cwd = tmp_path / "somewhere_else"
    cwd.mkdir()
    res = run_cli("train", "--resume", str(moved), cwd=cwd)
    assert res.returncode == 0, res.stderr
    assert (moved / "model.pixclass").is_file()
    assert not finished_run.exists() and list(cwd.iterdir()) == []


def test_a_copied_run_resumes_in_the_copy_and_leaves_the_original_alone(finished_run: Path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    (copy / "model.pixclass").unlink()
    before = {p.relative_to(finished_run): p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    res = run_cli("train", "--resume", str(copy))
    assert res.returncode == 0, res.stderr
    assert (copy / "model.pixclass").is_file()
    after = {p.relative_to(finished_run): p.read_bytes() for p in finished_run.rglob("*") if p.is_file()}
    assert after == before


def test_a_relative_data_path_is_saved_absolute_so_resume_does_not_depend_on_the_working_directory(
        class_folders, tmp_path):
    res = run_cli("train", class_folders.name, *QUICK, "--out", "run", cwd=class_folders.parent)
    assert res.returncode == 0, res.stderr
    config = json.loads((class_folders.parent / "run" / "config.json").read_text())
    assert config["data"] == str(class_folders.resolve()) and "out" not in config


def test_training_without_a_validation_set_writes_a_model_and_says_so(class_folders, tmp_path):
    run = tmp_path / "run"
    res = run_cli("train", str(class_folders), *TINY, "--epochs", "2", "--unfreeze-epochs", "1",
                  "--valid-pct", "0", "--out", str(run))
    assert res.returncode == 0, res.stderr
    assert "no validation set (trained on all 48 images)" in res.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"] == {} and summary["n_valid"] == 0
    assert (run / "model.pixclass").is_file()


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", "is damaged (a JSON list, not an object)"),
    ('{"data": "x", "epochs": "many"}', "'epochs' is 'many'"),
    ('{"data": "x", "ep', "is damaged ("),
    ("{}", "names no 'data'"),
])
def test_a_damaged_config_json_is_one_line_on_resume_and_export(finished_run: Path, content, expected):
    (finished_run / "config.json").write_text(content)
    _one_line_error(run_cli("train", "--resume", str(finished_run)), expected)
    _one_line_error(run_cli("export", str(finished_run)), expected)


@pytest.mark.parametrize("content, expected", [
    ('"just a string"', "a JSON str, not an object"),
    ('{"weights": "epoch-1.safetensors"}', "'state' is None"),
    ('{"weights": "../../model.pixclass", "state": "s", "stage_start": 0, "epoch": 0, "epochs": 1, '
     '"frozen_groups": 1, "rows": []}', "names '../../model.pixclass', not a file in checkpoints/"),
    ('{"weights": "w", "state": "s", "stage_start": 0, "epoch": -1, "epochs": 1, "frozen_groups": 1, "rows": []}',
     "'epoch' is -1"),
    ('{"weights": "w", "sta', "is damaged ("),
])
def test_a_damaged_checkpoint_pointer_is_one_line_on_resume(finished_run: Path, content, expected):
    (finished_run / "checkpoints" / "last.json").write_text(content)
    _one_line_error(run_cli("train", "--resume", str(finished_run)), expected)


def test_a_single_class_dataset_is_refused_before_training(tmp_path):
    from imagefiles import save_image

    for i in range(6):
        save_image(tmp_path / "data" / "cats" / f"c{i}.jpg", (200, 100, 50), i)
    res = run_cli("train", str(tmp_path / "data"), *QUICK, "--out", str(tmp_path / "run"))
    _one_line_error(res, "only one class (cats) in the training data")


@pytest.mark.parametrize("inside", ["", "runs/one"])
def test_a_run_folder_inside_the_data_folder_is_refused(class_folders, inside):
    out = class_folders / inside if inside else class_folders
    res = run_cli("train", str(class_folders), *QUICK, "--out", str(out))
    _one_line_error(res, "is inside the data folder")
    assert sorted(p.name for p in class_folders.iterdir()) == ["blue", "green", "red"]


def test_csv_rows_naming_files_outside_the_image_folder_are_refused_unless_allowed(class_folders, tmp_path):
    table = tmp_path / "table" / "labels.csv"
    table.parent.mkdir()
    shutil.copytree(class_folders / "red", table.parent / "red")
    shutil.copytree(class_folders / "blue", table.parent / "blue")
    rows = [f"red/red_{i}.jpg,red" for i in range(8)] + [f"blue/blue_{i}.jpg,blue" for i in range(8)]
    rows[3] = f"../{class_folders.name}/green/green_0.jpg,red"
    table.write_text("name,label\n" + "\n".join(rows) + "\n")
    res = run_cli("train", str(table), *QUICK, "--out", str(tmp_path / "run"))
    _one_line_error(res, "row 4 of the table names '../")
    res = run_cli("train", str(table), *QUICK, "--out", str(tmp_path / "run"), "--allow-outside")
    assert res.returncode == 0, res.stderr


def test_run_files_are_created_with_the_permissions_the_umask_allows(class_folders, tmp_path):
    run = tmp_path / "run"
    code = (f"import os, sys; os.umask(0o022); sys.argv = ['pixclass', 'train', {str(class_folders)!r}, "
            f"{', '.join(map(repr, QUICK))}, '--out', {str(run)!r}]\nfrom pixclass.cli import main\nmain()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for name in ("model.pixclass", "config.json", "summary.json", "checkpoints/final.safetensors"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name


def test_predict_escapes_a_newline_in_a_file_name_so_each_image_is_one_line(finished_run: Path, class_folders):
    odd = class_folders / "red" / "two\nlines.jpg"
    shutil.copy(class_folders / "red" / "red_0.jpg", odd)
    res = run_cli("predict", str(finished_run / "model.pixclass"), str(odd))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(class_folders / "red" / "two\\nlines.jpg") + ": ")
