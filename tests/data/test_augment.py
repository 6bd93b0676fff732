"""Augmentation presets and the train / eval pipelines: shape, dtype and normalization."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from imagefiles import noise_image
from pixclass.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    Augment,
    eval_transform,
    get_augment,
    train_transform,
)
from pixclass.errors import PixclassError


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_gives_a_normalized_square_float_tensor(preset):
    torch.manual_seed(0)
    tfm = train_transform(get_augment(preset), 32, IMAGENET_MEAN, IMAGENET_STD)

    x = tfm(noise_image((120, 120, 120), 0, size=48).crop((0, 0, 48, 40)))

    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert x.abs().max() < 5  # normalized values, not 0..255


def test_eval_transform_normalizes_with_the_given_statistics():
    tfm = eval_transform(16, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))

    x = tfm(Image.new("RGB", (40, 20), (255, 0, 128)))

    assert x.shape == (3, 16, 16)
    assert torch.allclose(x[0], torch.full((16, 16), 2.0))  # (1 - 0.5) / 0.25
    assert torch.allclose(x[1], torch.full((16, 16), -1.0))  # (0 - 0.5) / 0.5
    assert torch.allclose(x[2], torch.full((16, 16), 128 / 255 - 0.5))


def test_eval_transform_center_crops_after_resizing_the_shorter_side():
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left sixth only

    x = eval_transform(10, (0, 0, 0), (1, 1, 1), "crop")(img)

    assert x.shape == (3, 10, 10)
    assert x.max() < 0.1  # the crop is the black middle


def test_none_preset_is_deterministic():
    tfm = train_transform(get_augment("none"), 32, IMAGENET_MEAN, IMAGENET_STD)
    img = noise_image((100, 50, 20), 1)

    assert torch.equal(tfm(img), tfm(img))


def test_dict_overrides_the_default_preset():
    aug = get_augment({"flip_vert": True, "max_rotate": 0})

    assert aug == Augment(flip_vert=True, max_rotate=0)
    assert get_augment(None) == PRESETS["none"]


def test_unknown_preset_and_unknown_setting_are_errors():
    with pytest.raises(PixclassError, match="unknown augmentation preset 'wild': choose one of"):
        get_augment("wild")
    with pytest.raises(PixclassError, match="unknown augmentation setting"):
        get_augment({"flip_horizontal": True})
