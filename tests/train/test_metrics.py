"""Metrics on small known tensors, with the expected values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from pixclass.errors import PixclassError
from pixclass.train.metrics import (
    accuracy,
    accuracy_thresh,
    error_rate,
    fbeta,
    mae,
    per_class_report,
    r2_score,
    resolve_metrics,
    rmse,
)

# Single-label: arg-maxes are 0, 1, 0, 2 against targets 0, 1, 2, 2 → 3 of 4 right.
LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 5.0]])
TARGETS = torch.tensor([0, 1, 2, 2])

# Multi-label logits: positive ⇔ sigmoid > 0.5. Predictions [[1,0,1],[0,0,1]] against [[1,0,0],[0,1,1]].
ML_LOGITS = torch.tensor([[1.0, -1.0, 2.0], [-1.0, -1.0, 1.0]])
ML_TARGETS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


def test_accuracy_is_the_share_of_right_arg_maxes():
    assert accuracy(LOGITS, TARGETS) == pytest.approx(0.75)


def test_error_rate_is_one_minus_accuracy():
    assert error_rate(LOGITS, TARGETS) == pytest.approx(0.25)


def test_accuracy_thresh_counts_every_item_tag_decision():
    # Right: (0,0), (0,1), (1,0), (1,2); wrong: (0,2), (1,1) → 4 of 6.
    assert accuracy_thresh(ML_LOGITS, ML_TARGETS) == pytest.approx(4 / 6)


def test_accuracy_thresh_uses_the_threshold_on_probabilities():
    probs = torch.tensor([[0.6, 0.3], [0.8, 0.75]])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])

    assert accuracy_thresh(probs, y, thresh=0.7, sigmoid=False) == pytest.approx(2 / 4)


def test_f2_averages_per_item_scores():
    # Item 0: tp 1, precision 1/2, recall 1 → F2 = 5·½·1 / (4·½ + 1) = 5/6.
    # Item 1: tp 1, precision 1, recall 1/2 → F2 = 5·½ / (4 + ½) = 5/9.
    expected = (5 / 6 + 5 / 9) / 2

    assert fbeta(ML_LOGITS, ML_TARGETS, beta=2.0) == pytest.approx(expected, abs=1e-6)


def test_f1_weighs_precision_and_recall_equally():
    # Item 0: 2·½·1 / (½ + 1) = 2/3; item 1: 2·½ / (1 + ½) = 2/3.
    assert fbeta(ML_LOGITS, ML_TARGETS, beta=1.0) == pytest.approx(2 / 3, abs=1e-6)


def test_regression_errors():
    out = torch.tensor([[1.0], [2.0], [4.0]])
    y = torch.tensor([[1.0], [3.0], [2.0]])

    assert mae(out, y) == pytest.approx(1.0)
    assert rmse(out, y) == pytest.approx(math.sqrt(5 / 3))
    assert r2_score(y, y) == pytest.approx(1.0)


def test_default_metrics_per_task():
    assert list(resolve_metrics(None, "single")) == ["error_rate", "accuracy"]
    assert list(resolve_metrics(None, "multi")) == ["accuracy_thresh", "fbeta"]
    assert list(resolve_metrics(None, "regression")) == ["mae", "rmse"]


def test_resolved_multi_label_metrics_use_the_learners_threshold():
    metrics = resolve_metrics(["accuracy_thresh"], "multi", thresh=0.9)
    logits = torch.tensor([[2.0]])  # sigmoid ≈ 0.88: below 0.9

    assert metrics["accuracy_thresh"](logits, torch.tensor([[0.0]])) == 1.0


def test_a_metric_for_another_task_is_an_error():
    with pytest.raises(PixclassError, match="metric 'fbeta' is for multi tasks, but this data is single"):
        resolve_metrics(["fbeta"], "single")
    with pytest.raises(PixclassError, match="unknown metric 'auc'"):
        resolve_metrics("auc", "single")


def test_per_class_report_gives_precision_recall_and_support():
    rows = per_class_report(LOGITS, TARGETS, ["a", "b", "c"], "single")

    assert rows[0] == {"class": "a", "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert rows[2] == {"class": "c", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
