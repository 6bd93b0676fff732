"""The Learner's leak warning: validation images that are byte-identical copies of training images."""

from __future__ import annotations

import shutil
import warnings

import pytest

from imagefiles import SIZE
from pixclass import ImageData


def leak_messages(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "train/valid pair" in str(w.message)]


def test_a_train_image_copied_into_valid_is_named_with_the_pair_count_before_training(imagenet_folders,
                                                                                      make_learner):
    shutil.copyfile(imagenet_folders / "train" / "red" / "red_0.jpg", imagenet_folders / "valid" / "red" / "again.jpg")
    shutil.copyfile(imagenet_folders / "train" / "blue" / "blue_1.png", imagenet_folders / "valid" / "blue" / "b.png")
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=6, num_workers=0)
    learn = make_learner(data)
    with pytest.warns(UserWarning) as record:
        learn.fit_one_cycle(1, lr=1e-2)
    assert leak_messages(record) == [
        ("pixclass: 2 train/valid pairs of identical files (leaks: validation scores will look better than they "
        "are); list them with 'pixclass dupes'")]


def test_the_leak_warning_comes_once_per_learner(imagenet_folders, make_learner):
    shutil.copyfile(imagenet_folders / "train" / "red" / "red_0.jpg", imagenet_folders / "valid" / "red" / "again.jpg")
    learn = make_learner(ImageData.from_folder(imagenet_folders, size=SIZE, bs=6, num_workers=0))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        learn.lr_find(num_it=5)
        learn.fit_one_cycle(1, lr=1e-2)
    assert leak_messages(record) == [
        ("pixclass: 1 train/valid pair of identical files (leaks: validation scores will look better than they "
        "are); list them with 'pixclass dupes'")]


def test_no_copy_across_the_splits_means_no_leak_warning(imagenet_folders, make_learner):
    # A copy inside train is a duplicate, not a leak.
    shutil.copyfile(imagenet_folders / "train" / "red" / "red_0.jpg", imagenet_folders / "train" / "red" / "again.jpg")
    learn = make_learner(ImageData.from_folder(imagenet_folders, size=SIZE, bs=6, num_workers=0))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        learn.fit_one_cycle(1, lr=1e-2)
    assert leak_messages(record) == []
