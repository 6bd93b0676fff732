"""The loss of each task, checked against its formula on known tensors."""

from __future__ import annotations

import math

import pytest
import torch

from pixclass.errors import PixclassError
from pixclass.train.losses import activation_for, loss_for


def test_single_label_loss_is_cross_entropy():
    out, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])

    assert loss_for("single")(out, y).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))


def test_label_smoothing_raises_the_loss_of_a_confident_right_answer():
    out, y = torch.tensor([[5.0, 0.0]]), torch.tensor([0])

    assert loss_for("single", label_smoothing=0.1)(out, y) > loss_for("single")(out, y)


def test_multi_label_loss_is_binary_cross_entropy_on_logits():
    out, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])

    assert loss_for("multi")(out, y).item() == pytest.approx(math.log(2))


def test_regression_loss_is_mean_squared_error():
    out, y = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])

    assert loss_for("regression")(out, y).item() == pytest.approx((1 + 4) / 2)


def test_activation_per_task():
    assert [activation_for(t) for t in ("single", "multi", "regression")] == ["softmax", "sigmoid", "identity"]


def test_unknown_task_is_an_error():
    with pytest.raises(PixclassError, match="unknown task 'ranking'"):
        loss_for("ranking")
