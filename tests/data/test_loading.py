"""Loaders and show_batch: batches of the right shape, and unreadable files as one clear error."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from imagefiles import SIZE
from pixclass import ImageData
from pixclass.errors import ImageReadError, PixclassError


def test_loader_yields_normalized_batches_with_targets(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=4, num_workers=0)

    x, y = next(data.batches(data.loader("train")))

    assert x.shape == (4, 3, SIZE, SIZE) and x.dtype == torch.float32
    assert y.dtype == torch.long and y.shape == (4,)


def test_loader_targets_are_multi_hot_for_multi_label(planet_csv):
    data = ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_delim=" ",
                              size=SIZE, bs=5, num_workers=0)

    _, y = next(data.batches(data.loader("valid")))

    assert y.dtype == torch.float32 and y.shape == (5, 3)
    assert set(y.sum(1).tolist()) <= {1.0, 2.0}


def test_loader_targets_are_a_float_column_for_regression(regression_csv):
    data = ImageData.from_csv(regression_csv, folder="images", valid_col="is_valid", size=SIZE, bs=4,
                              num_workers=0)

    _, y = next(data.batches(data.loader("valid")))

    assert y.dtype == torch.float32 and y.shape == (4, 1)


def test_training_loader_drops_a_lone_last_item(class_folders):
    # 19 training images with bs 6: a last batch of one would break BatchNorm.
    data = ImageData.from_folder(class_folders, valid_pct=5 / 24, size=SIZE, bs=6, num_workers=0)
    assert len(data.train_paths) == 19

    sizes = [len(x) for x, _ in data.batches(data.loader("train"))]

    assert sizes == [6, 6, 6]


def test_test_split_has_no_targets(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=8, num_workers=0)

    batches = list(data.batches(data.loader("test")))

    assert len(batches) == 1 and batches[0][0].shape == (3, 3, SIZE, SIZE) and batches[0][1] is None


def test_unknown_split_is_an_error(imagenet_folders):
    data = ImageData.from_folder(imagenet_folders)

    with pytest.raises(PixclassError, match="unknown split 'validation'"):
        data.loader("validation")


def data_with_broken_file(imagenet_folders, broken, **kwargs) -> ImageData:
    target = imagenet_folders / "train" / "red" / "red_bad.jpg"
    shutil.copy(broken, target)
    return ImageData.from_folder(imagenet_folders, size=SIZE, bs=4, **kwargs), target


@pytest.mark.parametrize("num_workers", [0, 1])
def test_broken_file_in_a_loader_is_one_line_naming_it(imagenet_folders, broken_files, num_workers):
    data, bad = data_with_broken_file(imagenet_folders, broken_files["html"], num_workers=num_workers)

    with pytest.raises(ImageReadError) as err:
        for _ in data.batches(data.loader("train", shuffle=False)):
            pass

    message = str(err.value)
    assert message.startswith(f"cannot read '{bad}': not an image (HTML page")
    assert f"Run 'pixclass verify {bad.parent}'" in message
    assert "\n" not in message
    assert err.value.__cause__ is None and err.value.__context__ is None  # no worker traceback


def test_skip_bad_warns_and_skips_the_broken_file(imagenet_folders, broken_files):
    data, bad = data_with_broken_file(imagenet_folders, broken_files["truncated"], num_workers=0, skip_bad=True)

    with pytest.warns(UserWarning, match=f"skipped '{bad}': truncated file"):
        n = sum(len(x) for x, _ in data.batches(data.loader("train", shuffle=False)))

    assert n == len(data.train_paths) - 1


def test_show_batch_writes_a_png(imagenet_folders, tmp_path):
    data = ImageData.from_folder(imagenet_folders, size=SIZE, num_workers=0)

    fig = data.show_batch(rows=2, path=tmp_path / "batch.png")

    assert len(fig.axes) == 4
    assert {ax.get_title() for ax in fig.axes} <= {"blue", "green", "red"}
    with Image.open(tmp_path / "batch.png") as img:
        assert img.format == "PNG" and img.width > 100


def test_show_batch_labels_multi_label_images_with_their_tags(planet_csv, tmp_path):
    data = ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_delim=" ", size=SIZE)

    fig = data.show_batch(rows=2, split="valid")

    assert all(set(ax.get_title().split(";")) <= {"red", "green", "blue"} for ax in fig.axes)
