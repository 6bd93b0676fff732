"""`pixclass label-issues RUN`: RUN/label_issues.csv with every image, and one-line errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from .conftest import run_cli

HEADER = ["path", "label", "suggested", "score", "loss", "split", "issue"]


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_label_issues_writes_every_image_of_the_run_to_run_label_issues_csv(trained_run: Path):
    res = run_cli("label-issues", str(trained_run), "--top", "3")
    assert res.returncode == 0, res.stderr
    rows = _rows(trained_run / "label_issues.csv")
    assert rows[0] == HEADER
    assert len(rows) == 1 + 18  # the run's 3 classes × 6 images, train and valid
    assert {r[5] for r in rows[1:]} == {"train", "valid"}
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["score", "loss", "split"]
    assert len(lines) == 1 + 3 + 1
    assert lines[-1].startswith("cleanlab flags ") and str(trained_run / "label_issues.csv") in lines[-1]


def test_csv_option_writes_the_rows_where_it_says(trained_run: Path, tmp_path: Path):
    out = tmp_path / "issues.csv"
    res = run_cli("label-issues", str(trained_run), "--csv", str(out), "--folds", "3", "--top", "0")
    assert res.returncode == 0, res.stderr
    assert _rows(out)[0] == HEADER and len(_rows(out)) == 19


def test_more_folds_than_the_smallest_class_is_a_one_line_error(trained_run: Path):
    res = run_cli("label-issues", str(trained_run), "--folds", "7")
    assert res.returncode == 1
    assert res.stderr.startswith("pixclass: folds (7) is more than the 6 images of class '")
    assert len(res.stderr.strip().splitlines()) == 1


def test_fewer_than_two_folds_is_a_one_line_error(trained_run: Path):
    res = run_cli("label-issues", str(trained_run), "--folds", "1")
    assert res.returncode == 1
    assert res.stderr.strip() == ("pixclass: --folds must be at least 2 (a model fitted on K-1 folds predicts "
                                  "the K-th); got 1")


def test_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path: Path):
    res = run_cli("label-issues", str(tmp_path))
    assert res.returncode == 1
    assert res.stderr.strip() == f"pixclass: cannot rank the labels of '{tmp_path}': it is not a training run " \
                                 "(no config.json)"


def test_a_run_without_final_weights_is_a_one_line_error(trained_run: Path, tmp_path: Path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(trained_run / "config.json", unfinished / "config.json")
    res = run_cli("label-issues", str(unfinished))
    assert res.returncode == 1
    assert res.stderr.startswith(f"pixclass: '{unfinished}' has no final weights")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (unfinished / "label_issues.csv").exists()


def test_an_unknown_fold_model_is_a_one_line_error(trained_run: Path):
    res = run_cli("label-issues", str(trained_run), "--fold-model", "forest")
    assert res.returncode == 1
    assert res.stderr.strip() == "pixclass: unknown --fold-model 'forest': choose linear or head"
