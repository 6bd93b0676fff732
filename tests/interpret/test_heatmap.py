"""Grad-CAM heatmaps: the layer they are taken from, that they follow the evidence, that the model
comes back unchanged, and the top-losses grid with heatmaps as a real PNG."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from pixclass.errors import PixclassError
from pixclass.interpret import Interpretation
from pixclass.interpret.heatmap import Heatmapper, last_feature_layer
from pixclass.models.backbones import ImageClassifier
from pixclass.models.head import HeadConfig

PNG = b"\x89PNG\r\n\x1a\n"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_the_heatmap_layer_is_the_last_spatial_module_of_a_timm_body():
    resnet = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    effnet = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)

    assert last_feature_layer(resnet, 64) is resnet.layer4
    assert last_feature_layer(effnet, 64) is effnet.bn2
    assert last_feature_layer(resnet, 32) is resnet.layer3  # layer4 is 1×1 there: no place to point at


def test_a_body_without_spatial_features_is_refused_with_what_to_do_instead():
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))

    with pytest.raises(PixclassError, match="plot the top losses without heatmap=True"):
        last_feature_layer(flat, 8)


def _brightness_model() -> ImageClassifier:
    """A body that sums the channels (one feature map) and a head whose class 1 grows with it."""
    body = nn.Sequential(nn.Conv2d(3, 1, 1))
    with torch.no_grad():
        body[0].weight.fill_(1.0)
        body[0].bias.zero_()
    model = ImageClassifier(body, HeadConfig(n_in=1, n_out=2, hidden=0, ps=0.0, concat_pool=False))
    with torch.no_grad():
        for m in model.head.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.tensor([[-1.0], [1.0]]))
                m.bias.zero_()
    model.freeze()
    return model


def test_the_heatmap_lies_over_the_bright_square_that_drives_the_class(tmp_path):
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[4:12, 20:28] = 255  # a bright square, top right
    Image.fromarray(pixels).save(tmp_path / "square.png")
    model = _brightness_model()

    picture, heat = Heatmapper(model, 32, MEAN, STD, "crop")(tmp_path / "square.png", target=1)

    assert picture.shape == (32, 32, 3) and picture.dtype == np.uint8
    assert np.array_equal(picture, pixels)  # the model's own input, back as the picture
    assert heat.shape == (32, 32) and heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert 4 <= y < 12 and 20 <= x < 28
    assert heat[4:12, 20:28].mean() > 10 * heat[20:, :12].mean()


def test_a_heatmap_leaves_the_models_mode_and_frozen_flags_as_they_were(tmp_path):
    Image.fromarray(np.full((32, 32, 3), 90, dtype=np.uint8)).save(tmp_path / "grey.png")
    model = _brightness_model()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]

    Heatmapper(model, 32, MEAN, STD, "crop")(tmp_path / "grey.png", target=0)

    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_the_top_losses_grid_with_heatmaps_is_a_png_from_a_trained_learner(colour_learner, tmp_path):
    interp = colour_learner.interpret()

    interp.plot_top_losses(4, tmp_path / "heat.png", heatmap=True)

    assert (tmp_path / "heat.png").read_bytes()[:8] == PNG


def test_heatmaps_without_a_model_are_refused_naming_how_to_get_one(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    interp = Interpretation([[0.9, 0.1]], [1], ["a", "b"], "single", paths=[tmp_path / "a.png"])

    with pytest.raises(PixclassError, match="Interpretation.from_learner"):
        interp.plot_top_losses(1, heatmap=True)


def test_the_heatmap_picture_is_the_wide_image_as_the_runs_resize_method_made_it(tmp_path):
    pixels = np.zeros((16, 48, 3), dtype=np.uint8)
    pixels[:, :16] = 255  # the left third is white: squish keeps it, a centre crop cuts it off
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    model = _brightness_model()

    squished, _ = Heatmapper(model, 16, MEAN, STD, "squish")(tmp_path / "wide.png", target=1)
    cropped, _ = Heatmapper(model, 16, MEAN, STD, "crop")(tmp_path / "wide.png", target=1)

    assert squished.shape == cropped.shape == (16, 16, 3)
    assert squished[:, :5].min() == 255 and cropped.max() == 0
