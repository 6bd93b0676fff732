"""Class-activation heatmaps (Grad-CAM): where in the picture a model found its evidence.

Owns `last_feature_layer` (the body's last module with a spatial (B, C, H, W) output, found by
running one input through the body and watching every module, so it holds for any timm CNN
without a per-architecture table, which pytorch-grad-cam leaves to its user) and `Heatmapper`
(an image file → the model's input picture and its heatmap), on top of pytorch-grad-cam.

The picture shown is the model's own input (brought to its square by `eval_array`, the one
evaluation preprocessing, with the run's resize method), so the heatmap lies exactly over what
the model saw. The model is
put in eval mode for the computation and given back in the mode it came in, with its
`requires_grad` flags untouched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pixclass.errors import PixclassError

if TYPE_CHECKING:
    import torch
    from torch import nn


def last_feature_layer(body: nn.Module, size: int) -> nn.Module:
    """The last module, in execution order, whose output is a spatial (B, C, H, W) tensor at least
    2 × 2 at this input size (a 1 × 1 map would give the same heat everywhere)."""
    import torch

    seen: list[nn.Module] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and min(output.shape[2:]) > 1:
            seen.append(module)

    hooks = [m.register_forward_hook(record) for m in body.modules() if m is not body]
    was_training = body.training
    try:
        body.eval()
        with torch.no_grad():
            body(torch.zeros(1, 3, size, size, device=_device(body)))
    finally:
        body.train(was_training)
        for h in hooks:
            h.remove()
    if not seen:
        raise PixclassError(f"heatmaps need a convolutional body with spatial features; {type(body).__name__} has "
                            "none (e.g. a ViT): plot the top losses without heatmap=True")
    return seen[-1]


class Heatmapper:
    """Grad-CAM of a pixclass `ImageClassifier` (body + head) for image files.

    Args:
        model: the classifier; its output for class `target` is explained.
        size, mean, std, resize: the model's input size, normalization and resize method (as the
            run trained with).
    """

    def __init__(self, model: nn.Module, size: int, mean: Sequence[float], std: Sequence[float], resize: str):
        self.model, self.size, self.resize = model, int(size), resize
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._layer: nn.Module | None = None

    def __call__(self, path: str | os.PathLike, target: int) -> tuple[np.ndarray, np.ndarray]:
        """(the model's input picture as (H, W, 3) uint8, the heatmap as (H, W) floats in 0..1)."""
        import torch
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from pixclass.data.images import open_image
        from pixclass.data.preprocess import eval_array

        x = eval_array(open_image(path), self.size, self.mean, self.std, self.resize)
        if self._layer is None:
            self._layer = last_feature_layer(self.model.body, self.size)
        inp = torch.from_numpy(x)[None].to(_device(self.model)).requires_grad_(True)  # frozen bodies too
        was_training = self.model.training
        try:
            with torch.enable_grad(), GradCAM(model=self.model, target_layers=[self._layer]) as cam:
                heat = cam(input_tensor=inp, targets=[ClassifierOutputTarget(int(target))])[0]
        finally:
            self.model.train(was_training)
            self.model.zero_grad(set_to_none=True)
        return _picture(x, self.mean, self.std), np.clip(heat, 0.0, 1.0).astype(np.float32)


def _picture(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The normalized (3, H, W) input back as the (H, W, 3) uint8 picture it came from."""
    rgb = x * np.asarray(std, dtype=np.float32)[:, None, None] + np.asarray(mean, dtype=np.float32)[:, None, None]
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def _device(module: nn.Module) -> torch.device:
    import torch

    return next(module.parameters(), torch.zeros(0)).device
