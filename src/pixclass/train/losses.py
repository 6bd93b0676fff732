"""The loss of each task: cross-entropy (optionally label-smoothed), BCE-with-logits, MSE."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pixclass.errors import PixclassError


def loss_for(task: str, label_smoothing: float = 0.0, pos_weight=None) -> Callable:
    """The default loss module for `task`."""
    if task == "single":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if task == "multi":
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    if task == "regression":
        return nn.MSELoss()
    raise PixclassError(f"unknown task '{task}'")


def activation_for(task: str) -> str:
    """How outputs become probabilities/values at prediction time (stored in bundles)."""
    return {"single": "softmax", "multi": "sigmoid", "regression": "identity"}[task]
