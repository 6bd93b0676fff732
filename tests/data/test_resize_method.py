"""The resize methods (crop, pad, squish): exact pixels on a crafted wide picture, and training's
augmentation starting from the same square as evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixclass.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    Augment,
    eval_transform,
    train_transform,
)
from pixclass.data.preprocess import eval_array, fit_square, square_at_full_size
from pixclass.data.resize import DEFAULT_RESIZE, RESIZE_METHODS
from pixclass.errors import PixclassError

RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def bands(width: int, height: int, colours=(RED, GREEN, BLUE), vertical: bool = True) -> Image.Image:
    """Three equal bands of colour: left/middle/right (vertical) or top/middle/bottom."""
    arr = np.zeros((height, width, 3), np.uint8)
    for k, colour in enumerate(colours):
        if vertical:
            arr[:, k * width // 3:(k + 1) * width // 3] = colour
        else:
            arr[k * height // 3:(k + 1) * height // 3, :] = colour
    return Image.fromarray(arr, "RGB")


def colours_in(arr: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in px) for px in arr.reshape(-1, 3)}


def test_crop_keeps_the_center_square_of_a_wide_picture_and_loses_its_sides():
    out = np.asarray(fit_square(bands(90, 30), 30, "crop"))

    assert out.shape == (30, 30, 3)
    assert colours_in(out) == {GREEN}  # the red and blue sides are gone


def test_pad_keeps_the_whole_wide_picture_and_mirrors_it_into_the_borders():
    img = bands(90, 30, colours=(RED, GREEN, BLUE))
    img.paste((255, 255, 255), (0, 0, 90, 3))  # a white top edge, to see the mirror

    out = np.asarray(fit_square(img, 30, "pad"))  # 90x30 -> 30x10, then padded to 30x30

    picture = np.asarray(img.resize((30, 10), Image.Resampling.BILINEAR))
    assert out.shape == (30, 30, 3)
    assert np.array_equal(out[10:20], picture)  # all of it: the red and blue sides are kept
    assert np.array_equal(out[9], picture[1]) and np.array_equal(out[20], picture[8])  # mirrored about its edges
    assert np.array_equal(out[:10], np.pad(picture, ((10, 0), (0, 0), (0, 0)), mode="reflect")[:10])
    assert BLACK not in colours_in(out)


def test_pad_mirrors_a_tall_picture_into_its_left_and_right_borders():
    out = np.asarray(fit_square(bands(30, 90, vertical=False), 30, "pad"))

    picture = np.asarray(bands(30, 90, vertical=False).resize((10, 30), Image.Resampling.BILINEAR))
    assert np.array_equal(out[:, 10:20], picture)
    assert np.array_equal(out[:, 9], picture[:, 1]) and np.array_equal(out[:, 20], picture[:, 8])
    assert colours_in(out[:9, :]) == {RED} and colours_in(out[21:, :]) == {BLUE}


def test_squish_keeps_everything_at_a_changed_aspect_ratio():
    out = np.asarray(fit_square(bands(90, 30), 30, "squish"))  # each 30-px band becomes 10 px wide

    assert out.shape == (30, 30, 3)
    assert colours_in(out[:, :9]) == {RED}
    assert colours_in(out[:, 11:19]) == {GREEN}
    assert colours_in(out[:, 21:]) == {BLUE}
    assert BLACK not in colours_in(out)


def test_a_square_picture_is_the_same_under_every_method():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8), "RGB")

    arrays = [eval_array(img, 32, IMAGENET_MEAN, IMAGENET_STD, m) for m in RESIZE_METHODS]

    assert all(np.array_equal(arrays[0], a) for a in arrays[1:])


def test_an_unknown_method_is_refused_in_one_line_naming_the_choices():
    with pytest.raises(PixclassError, match=r"^unknown resize method 'stretch': choose one of crop, pad, squish$"):
        fit_square(bands(90, 30), 30, "stretch")
    with pytest.raises(PixclassError, match="choose one of crop, pad, squish"):
        eval_transform(30, IMAGENET_MEAN, IMAGENET_STD, "stretch")


@pytest.mark.parametrize("method", RESIZE_METHODS)
def test_training_without_augmentation_sees_what_evaluation_sees(method):
    # Training squares the picture at full size, then resizes (torchvision); evaluation resizes,
    # then pads (Pillow): for these vertical bands the same picture.
    img = bands(90, 30)
    train = train_transform(PRESETS["none"], 30, IMAGENET_MEAN, IMAGENET_STD, method)(img)
    evaluation = eval_transform(30, IMAGENET_MEAN, IMAGENET_STD, method)(img)

    assert train.shape == evaluation.shape == (3, 30, 30)
    assert (train - evaluation).abs().max() < 1e-5


@pytest.mark.parametrize("method", ["pad", "squish"])
def test_a_square_picture_trains_exactly_as_with_crop(method):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8), "RGB")
    outs = []
    for m in ("crop", method):
        torch.manual_seed(1)
        outs.append(train_transform(PRESETS["default"], 32, IMAGENET_MEAN, IMAGENET_STD, m)(img))

    assert torch.equal(outs[0], outs[1])


def test_the_full_size_square_of_a_wide_picture_pads_or_squishes_without_resizing_it():
    padded = np.asarray(square_at_full_size(bands(90, 30, vertical=False), "pad"))
    squished = np.asarray(square_at_full_size(bands(90, 30), "squish"))

    assert padded.shape == squished.shape == (90, 90, 3)
    assert np.array_equal(padded[30:60], np.asarray(bands(90, 30, vertical=False)))
    assert np.array_equal(padded[29], padded[31]) and np.array_equal(padded[60], padded[58])
    assert colours_in(squished[:, :29]) == {RED} and colours_in(squished[:, 61:]) == {BLUE}


def test_random_resized_crops_of_a_padded_picture_keep_its_sides():
    # Crops of >= 75 % of the 90-px padded square are >= 67 px wide: each reaches into the red
    # third (columns 0-29) and the blue third (60-89) of the picture's full width.
    aug = Augment(do_flip=False, max_rotate=0, max_zoom=1.0, max_lighting=0, max_warp=0, min_scale=0.75)
    padded = train_transform(aug, 30, (0, 0, 0), (1, 1, 1), "pad")
    torch.manual_seed(0)

    for _ in range(20):
        out = padded(bands(90, 30))
        assert out[0, :, 0].min() > 0.9 and out[2, :, 0].max() < 0.1  # left column red
        assert out[2, :, -1].min() > 0.9 and out[0, :, -1].max() < 0.1  # right column blue


def test_image_data_takes_the_method_and_defaults_to_the_measured_one(tmp_path):
    from imagefiles import write_class_folders
    from pixclass import ImageData

    folder = write_class_folders(tmp_path / "data", 4)
    default = ImageData.from_folder(folder, valid_pct=0.25, size=32, num_workers=0)
    padded = ImageData.from_folder(folder, valid_pct=0.25, size=32, num_workers=0, resize="pad")

    assert default.resize == DEFAULT_RESIZE and padded.resize == "pad"
    assert padded.with_size(48).resize == "pad"
    with pytest.raises(PixclassError, match="choose one of crop, pad, squish"):
        ImageData.from_folder(folder, valid_pct=0.25, size=32, resize="fill")
