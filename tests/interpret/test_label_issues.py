"""`label_issues(learn)`: out-of-fold ranking of every image's label, on tiny colour datasets with
a few deliberately wrong labels (timm's random-weight test model: its pooled features still
carry the colour)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import imagefiles
from pixclass import ImageData, Learner
from pixclass.errors import PixclassError
from pixclass.interpret.label_issues import COLUMNS, label_issues

# Image file name → the wrong label it is given (its folder names the right one).
WRONG = {"blue_0.jpg": "green", "green_2.jpg": "red", "red_5.png": "blue"}


def _learner(data: ImageData, tmp: Path) -> Learner:
    return Learner(data, arch=imagefiles.TINY_ARCH, pretrained=False, path=tmp / "run", progress=False)


@pytest.fixture(scope="module")
def noisy_learner(tmp_path_factory) -> Learner:
    """30 colour images (10 per class, a quarter for validation), three of them mislabelled."""
    tmp = tmp_path_factory.mktemp("noisy_colours")
    paths = sorted(imagefiles.write_class_folders(tmp / "colours", 10).glob("*/*"))
    labels = [WRONG.get(p.name, p.parent.name) for p in paths]
    data = ImageData.from_lists(paths, labels, valid_pct=0.25, seed=0, size=imagefiles.SIZE, bs=8, num_workers=0)
    return _learner(data, tmp)


@pytest.fixture(scope="module")
def ranked(noisy_learner):
    return label_issues(noisy_learner, folds=5, seed=0)


def test_the_deliberately_wrong_labels_are_ranked_first_flagged_and_corrected(ranked):
    top = ranked.rows[:len(WRONG)]
    assert {r.path.name for r in top} == set(WRONG)
    assert all(r.issue for r in top)
    assert {r.path.name: r.suggested for r in top} == {name: name.split("_")[0] for name in WRONG}
    assert {r.path.name: r.label for r in top} == WRONG


def test_every_image_of_train_and_valid_appears_once_with_its_split(noisy_learner, ranked):
    data = noisy_learner.data
    assert sorted(r.path for r in ranked.rows) == sorted(data.train_paths + data.valid_paths)
    split_of = {**{p: "train" for p in data.train_paths}, **{p: "valid" for p in data.valid_paths}}
    assert all(r.split == split_of[r.path] for r in ranked.rows)
    assert ranked.probs.shape == (30, 3)


def test_rows_are_sorted_by_score_with_scores_in_0_1(ranked):
    scores = [r.score for r in ranked.rows]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_the_csv_has_the_contract_columns_in_order_and_one_row_per_image(ranked, tmp_path):
    out = ranked.to_csv(tmp_path / "label_issues.csv")
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "label", "suggested", "score", "loss", "split", "issue"] == list(COLUMNS)
    assert len(rows) == 31
    first = rows[1]
    assert Path(first[0]).is_absolute() and first[0] == str(ranked.rows[0].path)
    assert first[1] == ranked.rows[0].label and first[5] in ("train", "valid") and first[6] in ("0", "1")
    assert sum(r[6] == "1" for r in rows[1:]) == ranked.n_issues


def test_the_same_seed_gives_the_same_ranking_and_probabilities(noisy_learner, ranked):
    again = label_issues(noisy_learner, folds=5, seed=0)
    assert again.rows == ranked.rows
    assert np.array_equal(again.probs, ranked.probs)


def test_the_learners_labels_and_paths_are_left_as_they_were(noisy_learner, ranked):
    data = noisy_learner.data
    before = (list(data.train_labels), list(data.valid_labels), list(data.train_paths))
    label_issues(noisy_learner, folds=3, seed=1)
    assert (data.train_labels, data.valid_labels, data.train_paths) == before


def test_the_head_fold_model_ranks_the_wrong_labels_first_too(noisy_learner):
    issues = label_issues(noisy_learner, folds=3, seed=0, fold_model="head")
    assert {r.path.name for r in issues.rows[:len(WRONG)]} == set(WRONG)


def test_more_folds_than_the_smallest_class_has_images_is_refused(noisy_learner):
    # "blue" has 10 images, one relabelled to green, plus the red one relabelled blue: 10.
    with pytest.raises(PixclassError, match=r"folds \(11\) is more than the 10 images of class '(blue|green|red)'"):
        label_issues(noisy_learner, folds=11)


def test_fewer_than_two_folds_are_refused(noisy_learner):
    with pytest.raises(PixclassError, match="folds must be at least 2"):
        label_issues(noisy_learner, folds=1)


def test_an_unknown_fold_model_is_refused(noisy_learner):
    with pytest.raises(PixclassError, match="unknown fold model 'forest'"):
        label_issues(noisy_learner, fold_model="forest")


def test_a_multi_label_image_with_a_wrong_tag_is_ranked_first(tmp_path):
    root = imagefiles.write_planet(tmp_path / "planet", n=36)
    lines = (root / "labels.csv").read_text().splitlines()
    assert lines[1] == "train_0,red"
    lines[1] = "train_0,blue"  # a red image tagged blue
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    data = ImageData.from_csv(root, "labels.csv", folder="train-jpg", suffix=".jpg", label_delim=" ",
                              valid_pct=0.25, seed=0, size=imagefiles.SIZE, bs=8, num_workers=0)
    issues = label_issues(_learner(data, tmp_path), folds=5, seed=0)
    first = issues.rows[0]
    assert first.path.name == "train_0.jpg"
    assert (first.label, first.suggested) == ("blue", "red")
    assert len(issues) == 36 and issues.probs.shape == (36, 3)


def test_a_regression_target_far_from_its_image_is_ranked_first(tmp_path):
    root = imagefiles.write_brightness(tmp_path / "brightness", n=30)
    lines = (root / "labels.csv").read_text().splitlines()
    name, value, valid = lines[3].split(",")
    lines[3] = f"{name},{1 - float(value):.4f},{valid}"  # a dark image labelled bright
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    data = ImageData.from_csv(root, "labels.csv", folder="images", valid_col="is_valid", size=imagefiles.SIZE, bs=8,
                              num_workers=0)
    issues = label_issues(_learner(data, tmp_path), folds=5, seed=0)
    assert issues.rows[0].path.name == name
    assert issues.rows[0].issue
    assert float(issues.rows[0].label) == pytest.approx(1 - float(value))
