"""ImageData factories: every way of saying where the images and their labels are.

Each factory ends in the same place: sorted classes, a train/valid split and a task inferred
from the labels (single-label, multi-label or regression).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from imagefiles import CLASSES, planet_tags, save_image
from pixclass import ImageData
from pixclass.errors import PixclassError


def names(paths) -> list[str]:
    return sorted(Path(p).name for p in paths)


# ----- folders ----------------------------------------------------------------------------------
def test_from_folder_with_train_valid_test_layout_keeps_that_split(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders, size=32)

    assert data.task == "single"
    assert data.classes == CLASSES
    assert len(data.train_paths) == 18 and len(data.valid_paths) == 6
    assert all("train" in p.parts for p in data.train_paths)
    assert all("valid" in p.parts for p in data.valid_paths)
    assert names(data.test_paths) == ["unknown_0.jpg", "unknown_1.jpg", "unknown_2.jpg"]
    assert data.targets("test") == [None, None, None]


def test_from_folder_labels_each_image_by_its_class_folder(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders)

    for path, label in zip(data.train_paths + data.valid_paths, data.train_labels + data.valid_labels):
        assert path.parent.name == label
    assert data.targets("valid")[:2] == [0, 0]  # "blue" is class 0


def test_from_folder_one_folder_per_class_splits_by_valid_pct(class_folders):
    data = ImageData.from_folder(class_folders, valid_pct=0.25, seed=3)

    assert data.classes == CLASSES
    assert len(data.valid_paths) == 6 and len(data.train_paths) == 18
    assert not set(data.train_paths) & set(data.valid_paths)


def test_same_seed_gives_the_same_split(class_folders):
    a = ImageData.from_folder(class_folders, valid_pct=0.25, seed=7)
    b = ImageData.from_folder(class_folders, valid_pct=0.25, seed=7)

    assert a.valid_paths == b.valid_paths and a.train_paths == b.train_paths


def test_different_seed_gives_a_different_split(class_folders):
    a = ImageData.from_folder(class_folders, valid_pct=0.25, seed=1)
    b = ImageData.from_folder(class_folders, valid_pct=0.25, seed=2)

    assert a.valid_paths != b.valid_paths


def test_from_folder_ignores_hidden_folders_and_non_images(class_folders):
    save_image(class_folders / "red" / ".quarantine" / "bad.jpg", (0, 0, 0), 1)
    (class_folders / "red" / "notes.txt").write_text("not an image")
    (class_folders / ".cache").mkdir()
    save_image(class_folders / ".cache" / "x.png", (0, 0, 0), 2)

    data = ImageData.from_folder(class_folders, valid_pct=0.25)

    assert data.classes == CLASSES
    assert len(data.train_paths) + len(data.valid_paths) == 24


def test_class_counts_are_training_images_per_class(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders)

    assert data.class_counts == {"blue": 6, "green": 6, "red": 6}


def test_classes_are_sorted_numerically_when_they_are_numbers(tmp_path):
    for label in ["10", "2", "1"]:
        for i in range(3):
            save_image(tmp_path / "digits" / label / f"{i}.png", (100, 100, 100), i)

    data = ImageData.from_folder(tmp_path / "digits", valid_pct=0.2)

    assert data.classes == ["1", "2", "10"]


def test_classes_do_not_depend_on_the_order_items_are_listed(class_folders):
    paths = sorted(class_folders.rglob("*.*"))
    labels = [p.parent.name for p in paths]
    forward = ImageData.from_lists(paths, labels, valid_pct=0.2)
    backward = ImageData.from_lists(paths[::-1], labels[::-1], valid_pct=0.2)

    assert forward.classes == backward.classes == CLASSES


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(PixclassError, match=r"folder '.*nowhere' does not exist") as err:
        ImageData.from_folder(tmp_path / "nowhere")
    assert "\n" not in str(err.value)


def test_folder_without_class_folders_says_what_layout_is_expected(tmp_path):
    save_image(tmp_path / "flat" / "a.jpg", (1, 2, 3), 0)

    with pytest.raises(PixclassError, match="no images in class folders"):
        ImageData.from_folder(tmp_path / "flat")


def test_valid_label_unseen_in_training_is_an_error(imagenet_folders):
    save_image(imagenet_folders / "valid" / "purple" / "p.jpg", (128, 0, 128), 0)

    with pytest.raises(PixclassError,
                       match=r"validation image '.*p\.jpg' has label 'purple' that no training image has"):
        ImageData.from_folder(imagenet_folders)


# ----- CSV and DataFrames ----------------------------------------------------------------------
def test_from_csv_multi_label_with_folder_suffix_and_space_delimited_tags(planet_csv):
    data = ImageData.from_csv(planet_csv, "labels.csv", folder="train-jpg", suffix=".jpg",
                              label_delim=" ", valid_pct=0.25, seed=0)

    assert data.task == "multi"
    assert data.classes == ["blue", "green", "red"]
    assert data.c == 3
    assert all(p.parent.name == "train-jpg" and p.suffix == ".jpg" for p in data.train_paths)
    first = data.train_paths[0].stem  # e.g. "train_0": tags red
    i = int(first.split("_")[1])
    expected = [1.0 if c in planet_tags(i) else 0.0 for c in data.classes]
    assert data.targets("train")[0] == expected


def test_multi_label_class_counts_count_each_tag(planet_csv):
    data = ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_delim=" ", valid_pct=0.0)

    # 24 images cycling through 6 tag sets; each tag is in 3 of the 6 sets.
    assert data.class_counts == {"blue": 12, "green": 12, "red": 12}


def test_from_csv_float_labels_mean_regression_and_valid_col_splits(regression_csv):
    data = ImageData.from_csv(regression_csv, "labels.csv", folder="images", valid_col="is_valid")

    assert data.task == "regression"
    assert data.classes == [] and data.c == 1
    assert names(data.valid_paths) == names([f"grey_{i}.png" for i in (0, 5, 10, 15)])
    assert len(data.train_paths) == 16
    assert data.targets("valid")[1] == pytest.approx(75 / 255, abs=1e-4)
    assert data.class_counts == {}


def test_from_df_reads_columns_by_name(regression_csv):
    df = pd.read_csv(regression_csv / "labels.csv")
    df["kind"] = ["dark" if b < 0.5 else "light" for b in df["brightness"]]

    data = ImageData.from_df(df, path=regression_csv, folder="images", fn_col="name", label_col="kind",
                             valid_col="is_valid")

    assert data.task == "single"
    assert data.classes == ["dark", "light"]
    assert len(data.valid_paths) == 4


def test_csv_missing_column_lists_the_columns_it_has(planet_csv):
    with pytest.raises(PixclassError, match="no label column 'labels'; its columns are: image_name, tags") as err:
        ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_col="labels")
    assert "\n" not in str(err.value)


def test_csv_listing_a_missing_file_names_it_and_suggests_folder_and_suffix(planet_csv):
    with open(planet_csv / "labels.csv", "a") as f:
        f.write("ghost_7,red\n")

    with pytest.raises(PixclassError, match=r"'.*ghost_7\.jpg' listed in the table does not exist.*suffix"):
        ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_delim=" ")


def test_missing_csv_file_is_an_error(tmp_path):
    with pytest.raises(PixclassError, match="CSV file .* does not exist"):
        ImageData.from_csv(tmp_path, "labels.csv")


# ----- file names, functions and lists ---------------------------------------------------------
def test_from_name_re_takes_the_label_from_the_first_group(class_folders):
    data = ImageData.from_name_re(class_folders, r"/([a-z]+)_\d+\.(?:jpg|png)$", valid_pct=0.25)

    assert data.classes == CLASSES
    for path, label in zip(data.train_paths, data.train_labels):
        assert path.name.startswith(label + "_")


def test_from_name_re_that_does_not_match_names_the_file(class_folders):
    with pytest.raises(PixclassError, match=r"pattern .* does not match .* file name '.*blue_0\.jpg'"):
        ImageData.from_name_re(class_folders, r"(cat|dog)_\d+")


def test_from_name_func_labels_with_the_function(class_folders):
    data = ImageData.from_name_func(class_folders, lambda p: "jpeg" if p.suffix == ".jpg" else "png",
                                    valid_pct=0.25)

    assert data.classes == ["jpeg", "png"]
    assert data.class_counts["jpeg"] + data.class_counts["png"] == len(data.train_paths)


def test_from_lists_with_valid_idx_uses_exactly_those_items(class_folders):
    paths = sorted(class_folders.rglob("*.*"))
    labels = [p.parent.name for p in paths]

    data = ImageData.from_lists(paths, labels, valid_idx=[0, 8, 16])

    assert data.valid_paths == [paths[0], paths[8], paths[16]]
    assert data.valid_labels == ["blue", "green", "red"]
    assert len(data.train_paths) == 21


def test_from_lists_with_mismatched_lengths_is_an_error(class_folders):
    paths = sorted(class_folders.rglob("*.*"))

    with pytest.raises(PixclassError, match="got 24 paths but 23 labels"):
        ImageData.from_lists(paths, ["red"] * 23)


def test_unlabelled_rows_are_dropped_with_a_warning(class_folders):
    paths = sorted(class_folders.rglob("*.*"))
    labels = [p.parent.name for p in paths]
    labels[3] = None

    with pytest.warns(UserWarning, match="ignoring 1 rows without a label"):
        data = ImageData.from_lists(paths, labels, valid_pct=0.25)

    assert paths[3] not in data.train_paths + data.valid_paths
    assert len(data.train_paths) + len(data.valid_paths) == 23


def test_repr_summarises_the_data(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders, size=32, bs=4)

    assert repr(data) == "ImageData(3 classes; train 18, valid 6, test 3; size 32, bs 4)"
