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


def test_pad_keeps_the_whole_wide_picture_between_black_bands():
    out = np.asarray(fit_square(bands(90, 30), 30, "pad"))  # 90x30 -> 30x10, padded to 30x30

    assert out.shape == (30, 30, 3)
    assert colours_in(out[:10]) == {BLACK} and colours_in(out[20:]) == {BLACK}
    picture = out[10:20]
    assert colours_in(picture[:, :9]) == {RED}
    assert colours_in(picture[:, 11:19]) == {GREEN}
    assert colours_in(picture[:, 21:]) == {BLUE}


def test_pad_puts_black_bands_left_and_right_of_a_tall_picture():
    out = np.asarray(fit_square(bands(30, 90, vertical=False), 30, "pad"))

    assert colours_in(out[:, :10]) == {BLACK} and colours_in(out[:, 20:]) == {BLACK}
    assert colours_in(out[:9, 10:20]) == {RED} and colours_in(out[21:, 10:20]) == {BLUE}


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


def test_eval_array_normalizes_the_pad_black_to_minus_mean_over_std():
    out = eval_array(bands(90, 30), 30, IMAGENET_MEAN, IMAGENET_STD, "pad")

    expected = -np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)
    assert np.allclose(out[:, 0, 0], expected, atol=1e-6) and np.allclose(out[:, 29, 29], expected, atol=1e-6)


def test_an_unknown_method_is_refused_in_one_line_naming_the_choices():
    with pytest.raises(PixclassError, match=r"^unknown resize method 'stretch': choose one of crop, pad, squish$"):
        fit_square(bands(90, 30), 30, "stretch")
    with pytest.raises(PixclassError, match="choose one of crop, pad, squish"):
        eval_transform(30, IMAGENET_MEAN, IMAGENET_STD, "stretch")


@pytest.mark.parametrize("method", RESIZE_METHODS)
def test_training_without_augmentation_sees_what_evaluation_sees(method):
    # Training squares the picture at full size, then resizes (torchvision); evaluation resizes,
    # then pads (Pillow): the same picture, but training blends the rows where the black bands
    # meet the picture (rows 9-10 and 19-20) as it resizes them together.
    img = bands(90, 30)
    train = train_transform(PRESETS["none"], 30, IMAGENET_MEAN, IMAGENET_STD, method)(img)
    evaluation = eval_transform(30, IMAGENET_MEAN, IMAGENET_STD, method)(img)
    rows = [r for r in range(30) if method != "pad" or r not in (9, 10, 19, 20)]

    assert train.shape == evaluation.shape == (3, 30, 30)
    assert (train - evaluation)[:, rows].abs().max() < 1e-5


@pytest.mark.parametrize("method", ["pad", "squish"])
def test_a_square_picture_trains_exactly_as_with_crop(method):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8), "RGB")
    outs = []
    for m in ("crop", method):
        torch.manual_seed(1)
        outs.append(train_transform(PRESETS["default"], 32, IMAGENET_MEAN, IMAGENET_STD, m)(img))

    assert torch.equal(outs[0], outs[1])


def test_the_full_size_square_of_a_wide_picture_pads_or_squishes_without_resizing_it():
    padded = np.asarray(square_at_full_size(bands(90, 30), "pad"))
    squished = np.asarray(square_at_full_size(bands(90, 30), "squish"))

    assert padded.shape == squished.shape == (90, 90, 3)
    assert colours_in(padded[:30]) == colours_in(padded[60:]) == {BLACK}
    assert np.array_equal(padded[30:60], np.asarray(bands(90, 30)))
    assert colours_in(squished[:, :29]) == {RED} and colours_in(squished[:, 61:]) == {BLUE}


def test_random_resized_crops_of_a_padded_picture_keep_its_black_bands():
    # Crops of >= 75 % of the 90-px padded square are >= 67 rows high: each reaches into both
    # 30-row black bands, so its first and last rows are black; cropped pictures have no black.
    aug = Augment(do_flip=False, max_rotate=0, max_zoom=1.0, max_lighting=0, max_warp=0, min_scale=0.75)
    black = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])[:, None]
    padded = train_transform(aug, 30, IMAGENET_MEAN, IMAGENET_STD, "pad")
    cropped = train_transform(aug, 30, IMAGENET_MEAN, IMAGENET_STD, "crop")
    torch.manual_seed(0)

    for _ in range(20):
        out = padded(bands(90, 30))
        assert torch.allclose(out[:, 0, :], black, atol=1e-4) and torch.allclose(out[:, -1, :], black, atol=1e-4)
        assert not torch.isclose(cropped(bands(90, 30)), black[:, :, None], atol=1e-2).all(0).any()


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
