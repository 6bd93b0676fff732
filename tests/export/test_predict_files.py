"""Batch prediction over files: the CSV reads back to what was predicted for any file name, unreadable
files are rows with their reason, and --sort-into never overwrites, never duplicates, never loses a file."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from imagefiles import SIZE, save_image, write_brightness, write_class_folders, write_planet
from pixclass import ImageData, load_model
from pixclass.errors import PixclassError
from pixclass.export.predict_files import csv_header, expand_paths, label_text, predict_files, prob_text
from pixclass.export.sort_files import ALREADY_THERE, COPIED, MOVED, UNSURE, folder_name, place
from test_bundle import trained, with_edited_meta

ODD_NAMES = ["a, b.jpg", 'say "cheese".jpg', "new\nline.jpg", "café 猫.png", "semi;colon 'q'.png"]


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colour")
    data = ImageData.from_folder(write_class_folders(root / "data", 6), valid_pct=0.25, seed=0, size=SIZE, bs=6,
                                 num_workers=0)
    return trained(data, root).export(root / "colours.pixclass")


@pytest.fixture(scope="module")
def planet_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planet")
    data = ImageData.from_csv(write_planet(root / "planet"), folder="train-jpg", suffix=".jpg", label_delim=" ",
                              valid_pct=0.25, size=SIZE, bs=6, num_workers=0)
    return trained(data, root).export(root / "planet.pixclass")


@pytest.fixture(scope="module")
def grey_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grey")
    data = ImageData.from_csv(write_brightness(root / "grey"), folder="images", valid_col="is_valid", size=SIZE,
                              bs=4, num_workers=0)
    return trained(data, root, y_range=(0.0, 1.0)).export(root / "grey.pixclass")


@pytest.fixture
def photos(tmp_path) -> Path:
    """photos/: two images of each colour, and sub/ with images named with commas, quotes, a newline."""
    root = tmp_path / "photos"
    for i, (name, colour) in enumerate({"r": (210, 50, 40), "g": (50, 200, 60), "b": (40, 60, 210)}.items()):
        for j in range(2):
            save_image(root / f"{name}{j}.jpg", colour, seed=10 * i + j)
    for k, name in enumerate(ODD_NAMES):
        save_image(root / "sub" / name, (200, 50, 40), seed=100 + k)
    return root


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def expected_rows(model_path: Path, files: list[Path], top_k: int = 0) -> list[list[str]]:
    """What the CSV must say, from predicting each file alone."""
    model = load_model(model_path)
    rows = []
    for f in files:
        pred = model.predict(f)
        rows.append([str(f), label_text(pred), prob_text(pred.prob), ""]
                    + [c for name, p in pred.top(top_k) for c in (name, prob_text(p))])
    return rows


def assert_rows_match(rows: list[list[str]], expected: list[list[str]]) -> None:
    """Equal, with probabilities compared to 1e-4 (a batch and a single image may round differently)."""
    assert len(rows) == len(expected)
    for row, exp in zip(rows, expected):
        assert len(row) == len(exp)
        for cell, want in zip(row, exp):
            if want and want.replace(".", "", 1).isdigit():
                assert float(cell) == pytest.approx(float(want), abs=1.01e-4)
            else:
                assert cell == want


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path → bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- the CSV -------------------------------------------------------------------------------------

def test_the_csv_reads_back_to_exactly_what_was_predicted_for_any_file_name(colour_model, photos, tmp_path):
    out = tmp_path / "preds.csv"

    summary = predict_files(colour_model, [photos], out)

    files = expand_paths([photos])
    assert {f.name for f in files} >= set(ODD_NAMES)
    rows = read_rows(out)
    assert rows[0] == ["path", "label", "prob", "error"]
    assert_rows_match(rows[1:], expected_rows(colour_model, files))
    assert (summary.n_files, summary.n_predicted, summary.n_unreadable) == (11, 11, 0)


def test_an_unreadable_file_is_a_row_with_its_reason_and_no_label(colour_model, photos, broken_files, tmp_path):
    out = tmp_path / "preds.csv"

    summary = predict_files(colour_model, [photos / "r0.jpg", broken_files["html"], broken_files["empty"]], out)

    rows = read_rows(out)
    assert rows[2][:3] == [str(broken_files["html"]), "", ""] and rows[2][3].startswith("not an image (HTML page")
    assert rows[3][:3] == [str(broken_files["empty"]), "", ""] and rows[3][3] != ""
    assert rows[1][3] == "" and rows[1][1] in ("blue", "green", "red")
    assert (summary.n_predicted, summary.n_unreadable) == (1, 2)


def test_top_k_adds_the_k_most_probable_classes_highest_first(colour_model, photos, tmp_path):
    out = tmp_path / "preds.csv"
    files = [photos / "r0.jpg", photos / "g0.jpg"]

    predict_files(colour_model, files, out, top_k=2)

    rows = read_rows(out)
    assert rows[0] == ["path", "label", "prob", "error", "top1", "prob1", "top2", "prob2"]
    assert_rows_match(rows[1:], expected_rows(colour_model, files, top_k=2))
    assert all(r[4] == r[1] for r in rows[1:])  # single-label: the first of the top classes is the label


def test_top_k_beyond_the_number_of_classes_gives_one_pair_per_class(colour_model, photos, tmp_path):
    out = tmp_path / "preds.csv"

    predict_files(colour_model, [photos / "b0.jpg"], out, top_k=10)

    assert read_rows(out)[0] == csv_header(3)


def test_multi_label_rows_hold_the_predicted_tags_joined_by_a_space(planet_model, photos, tmp_path):
    low = with_edited_meta(planet_model, tmp_path / "low.pixclass", lambda m: m.update(threshold=0.001))
    out = tmp_path / "preds.csv"

    predict_files(low, [photos / "r0.jpg", photos / "b1.jpg"], out)

    rows = read_rows(out)
    assert [r[1] for r in rows[1:]] == ["blue green red", "blue green red"]
    assert_rows_match(rows[1:], expected_rows(low, [photos / "r0.jpg", photos / "b1.jpg"]))


def test_regression_rows_hold_the_value_and_an_empty_prob(grey_model, photos, tmp_path):
    out = tmp_path / "preds.csv"

    predict_files(grey_model, [photos / "g0.jpg"], out)

    row = read_rows(out)[1]
    value = load_model(grey_model).predict(photos / "g0.jpg").label
    assert float(row[1]) == pytest.approx(value, rel=1e-5) and row[2:] == ["", ""]


def test_top_k_is_refused_for_a_regression_model(grey_model, photos):
    with pytest.raises(PixclassError, match="--top-k ranks classes"):
        predict_files(grey_model, [photos], top_k=2)


def test_an_earlier_predictions_csv_is_replaced(colour_model, photos, tmp_path):
    out = tmp_path / "preds.csv"
    predict_files(colour_model, [photos], out)

    predict_files(colour_model, [photos / "r0.jpg"], out)

    assert len(read_rows(out)) == 2


def test_a_file_that_is_not_a_predictions_csv_is_never_overwritten(colour_model, photos, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("name,label\ncat.jpg,cat\n")

    with pytest.raises(PixclassError, match="exists and is not a predictions CSV"):
        predict_files(colour_model, [photos], labels)

    assert labels.read_text() == "name,label\ncat.jpg,cat\n"


def test_a_missing_path_is_one_clear_error(colour_model, tmp_path):
    with pytest.raises(PixclassError, match="'.*nowhere' does not exist"):
        predict_files(colour_model, [tmp_path / "nowhere"])


def test_a_file_given_twice_is_predicted_once(colour_model, photos, tmp_path):
    assert expand_paths([photos, photos / "r0.jpg"]) == expand_paths([photos])


# -- sorting -------------------------------------------------------------------------------------

def predicted_labels(model_path: Path, files: list[Path]) -> dict[Path, str]:
    model = load_model(model_path)
    return {f: model.predict(f).label for f in files}


def test_sort_into_copies_each_image_into_its_labels_folder(colour_model, photos, tmp_path):
    before = tree(photos)
    labels = predicted_labels(colour_model, expand_paths([photos]))

    summary = predict_files(colour_model, [photos], sort_into=tmp_path / "sorted")

    assert tree(photos) == before
    assert tree(tmp_path / "sorted") == {f"{labels[f]}/{f.name}": before[str(f.relative_to(photos))] for f in labels}
    assert summary.placed == {COPIED: 11}


def test_a_second_run_recognises_what_is_sorted_and_copies_nothing_twice(colour_model, photos, tmp_path):
    predict_files(colour_model, [photos], sort_into=tmp_path / "sorted")
    first = tree(tmp_path / "sorted")

    summary = predict_files(colour_model, [photos], sort_into=tmp_path / "sorted")

    assert tree(tmp_path / "sorted") == first
    assert summary.placed == {ALREADY_THERE: 11}


def test_a_name_taken_by_another_file_gets_a_number_and_nothing_is_overwritten(colour_model, photos, tmp_path):
    label = predicted_labels(colour_model, [photos / "r0.jpg"])[photos / "r0.jpg"]
    taken = tmp_path / "sorted" / label / "r0.jpg"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"someone else's picture")

    predict_files(colour_model, [photos / "r0.jpg"], sort_into=tmp_path / "sorted")
    predict_files(colour_model, [photos / "r0.jpg"], sort_into=tmp_path / "sorted")  # and again: no (3)

    assert tree(tmp_path / "sorted" / label) == {"r0.jpg": b"someone else's picture",
                                                 "r0 (2).jpg": (photos / "r0.jpg").read_bytes()}


def test_move_leaves_every_file_exactly_once_in_the_sorted_folder_and_unreadable_ones_in_place(
        colour_model, photos, broken_files, tmp_path):
    readable = [hashlib.sha256(b).hexdigest() for b in tree(photos).values()]
    broken_before = {p: p.read_bytes() for p in broken_files.values()}

    summary = predict_files(colour_model, [photos, broken_files["html"].parent], sort_into=tmp_path / "sorted",
                            move=True)

    moved = [hashlib.sha256(b).hexdigest() for b in tree(tmp_path / "sorted").values()]
    assert sorted(moved) == sorted(readable)  # each exactly once
    assert tree(photos) == {}
    assert {p: p.read_bytes() for p in broken_files.values()} == broken_before
    assert summary.placed == {MOVED: 11} and summary.n_unreadable == 3


def test_move_across_filesystems_keeps_every_file(colour_model, photos, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a writable /dev/shm on another filesystem than the temporary folder")
    before = sorted(tree(photos).values())
    dest = Path(tempfile.mkdtemp(dir=shm))
    try:
        predict_files(colour_model, [photos], sort_into=dest / "sorted", move=True)

        assert sorted(tree(dest / "sorted").values()) == before
        assert tree(photos) == {}
        assert not [p for p in (dest / "sorted").rglob(".*")]  # no temporary file left
    finally:
        shutil.rmtree(dest)


def test_under_min_prob_an_image_goes_to_unsure(colour_model, photos, tmp_path):
    predict_files(colour_model, [photos / "r0.jpg", photos / "g1.jpg"], sort_into=tmp_path / "sorted",
                  min_prob=1.0)

    assert sorted(tree(tmp_path / "sorted")) == [f"{UNSURE}/g1.jpg", f"{UNSURE}/r0.jpg"]


def test_a_multi_label_image_is_copied_into_each_tags_folder(planet_model, photos, tmp_path):
    low = with_edited_meta(planet_model, tmp_path / "low.pixclass", lambda m: m.update(threshold=0.001))

    predict_files(low, [photos / "r0.jpg"], sort_into=tmp_path / "sorted")

    assert sorted(tree(tmp_path / "sorted")) == ["blue/r0.jpg", "green/r0.jpg", "red/r0.jpg"]


def test_a_multi_label_image_without_tags_goes_to_unsure(planet_model, photos, tmp_path):
    high = with_edited_meta(planet_model, tmp_path / "high.pixclass", lambda m: m.update(threshold=0.999))

    predict_files(high, [photos / "r0.jpg"], sort_into=tmp_path / "sorted")

    assert sorted(tree(tmp_path / "sorted")) == [f"{UNSURE}/r0.jpg"]


def test_move_with_a_multi_label_model_is_refused_before_anything_moves(planet_model, photos, tmp_path):
    before = tree(photos)

    with pytest.raises(PixclassError, match="--move cannot put one image into the folder of each of its tags"):
        predict_files(planet_model, [photos], sort_into=tmp_path / "sorted", move=True)

    assert tree(photos) == before and not (tmp_path / "sorted").exists()


def test_sorting_by_a_regression_model_is_refused(grey_model, photos, tmp_path):
    with pytest.raises(PixclassError, match="--sort-into needs classes"):
        predict_files(grey_model, [photos], sort_into=tmp_path / "sorted")


def test_the_sort_folder_inside_an_input_folder_is_never_searched(colour_model, photos):
    predict_files(colour_model, [photos], sort_into=photos / "sorted")

    summary = predict_files(colour_model, [photos], sort_into=photos / "sorted")

    assert summary.n_files == 11 and summary.placed == {ALREADY_THERE: 11}
    assert len(tree(photos / "sorted")) == 11


def test_moving_the_sorted_folder_onto_itself_changes_nothing(colour_model, photos, tmp_path):
    predict_files(colour_model, [photos], sort_into=tmp_path / "sorted", move=True)
    sorted_before = tree(tmp_path / "sorted")

    summary = predict_files(colour_model, [tmp_path / "sorted"], sort_into=tmp_path / "sorted", move=True)

    assert tree(tmp_path / "sorted") == sorted_before and summary.placed == {ALREADY_THERE: 11}


def test_move_and_min_prob_need_sort_into(colour_model, photos):
    with pytest.raises(PixclassError, match="--move only applies with --sort-into"):
        predict_files(colour_model, [photos], move=True)
    with pytest.raises(PixclassError, match="--min-prob only applies with --sort-into"):
        predict_files(colour_model, [photos], min_prob=0.5)


def test_a_label_becomes_one_folder_inside_the_sort_folder():
    assert [folder_name(c) for c in ("cat", "a/b", "..", ".", "c\\d", "sea lion")] == \
        ["cat", "a_b", "__", "_", "c_d", "sea lion"]


def test_a_hard_link_of_a_sorted_file_is_recognised_and_the_link_removed_by_a_move(tmp_path):
    (tmp_path / "sorted" / "cat").mkdir(parents=True)
    sorted_file = tmp_path / "sorted" / "cat" / "x.jpg"
    sorted_file.write_bytes(b"pixels")
    os.link(sorted_file, tmp_path / "x.jpg")

    assert place(tmp_path / "x.jpg", tmp_path / "sorted" / "cat", move=True) == (sorted_file, ALREADY_THERE)

    assert not (tmp_path / "x.jpg").exists() and sorted_file.read_bytes() == b"pixels"


def test_tta_rows_are_the_test_time_augmented_predictions(colour_model, photos, tmp_path):
    out = tmp_path / "preds.csv"
    model = load_model(colour_model)

    predict_files(colour_model, [photos / "r0.jpg"], out, tta=True, top_k=3)

    row = read_rows(out)[1]
    tta = model.predict(photos / "r0.jpg", tta=True)
    assert [float(row[i]) for i in (5, 7, 9)] == pytest.approx([p for _, p in tta.top(3)], abs=1.01e-4)


def test_an_interrupted_run_writes_the_csv_of_the_files_done(colour_model, photos, tmp_path):
    out = tmp_path / "preds.csv"
    seen = []

    def stop_after_two(result):
        seen.append(result.path)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_files(colour_model, [photos], out, on_file=stop_after_two)

    assert [r[0] for r in read_rows(out)[1:]] == [str(p) for p in seen]


def test_sorting_into_a_file_is_refused_before_predicting(colour_model, photos, tmp_path):
    (tmp_path / "sorted").write_text("a file")

    with pytest.raises(PixclassError, match="--sort-into '.*sorted' is a file; give a folder"):
        predict_files(colour_model, [photos], sort_into=tmp_path / "sorted")
