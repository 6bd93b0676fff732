"""Metrics over a whole validation set: `fn(outputs, targets) -> float`, looked up by name.

Owns: error rate, accuracy, thresholded accuracy and F-beta for multi-label, regression errors,
per-class precision/recall/F1, and the default metrics of each task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from pixclass.errors import PixclassError

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    """Share of items whose arg-max class is the target (single-label)."""
    return (out.argmax(dim=1) == y).float().mean().item()


def error_rate(out: torch.Tensor, y: torch.Tensor) -> float:
    """1 - accuracy."""
    return 1.0 - accuracy(out, y)


def accuracy_thresh(out: torch.Tensor, y: torch.Tensor, thresh: float = 0.5, sigmoid: bool = True) -> float:
    """Multi-label: share of (item, tag) decisions right when tags above `thresh` are predicted."""
    probs = out.sigmoid() if sigmoid else out
    return ((probs > thresh) == y.bool()).float().mean().item()


def fbeta(out: torch.Tensor, y: torch.Tensor, beta: float = 2.0, thresh: float = 0.5,
          sigmoid: bool = True, eps: float = 1e-9) -> float:
    """Multi-label F-beta averaged over items (F2 by default, as in the Planet competition)."""
    pred = ((out.sigmoid() if sigmoid else out) > thresh).float()
    tp = (pred * y).sum(dim=1)
    precision = tp / (pred.sum(dim=1) + eps)
    recall = tp / (y.sum(dim=1) + eps)
    b2 = beta * beta
    f = (1 + b2) * precision * recall / (b2 * precision + recall + eps)
    return f.mean().item()


def mse(out: torch.Tensor, y: torch.Tensor) -> float:
    return torch.mean((out.view(-1) - y.view(-1)) ** 2).item()


def rmse(out: torch.Tensor, y: torch.Tensor) -> float:
    return mse(out, y) ** 0.5


def mae(out: torch.Tensor, y: torch.Tensor) -> float:
    return torch.mean((out.view(-1) - y.view(-1)).abs()).item()


def r2_score(out: torch.Tensor, y: torch.Tensor) -> float:
    y = y.view(-1).float()
    ss_res = torch.sum((y - out.view(-1)) ** 2)
    ss_tot = torch.sum((y - y.mean()) ** 2)
    return (1 - ss_res / ss_tot).item() if ss_tot > 0 else float("nan")


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "error_rate": error_rate,
    "accuracy_thresh": accuracy_thresh,
    "fbeta": fbeta,
    "f2": partial(fbeta, beta=2.0),
    "f1": partial(fbeta, beta=1.0),
    "mse": mse,
    "rmse": rmse,
    "mae": mae,
    "r2": r2_score,
}
DEFAULT_METRICS = {"single": ["error_rate", "accuracy"], "multi": ["accuracy_thresh", "fbeta"],
                   "regression": ["mae", "rmse"]}
_TASKS_OF = {"accuracy": "single", "error_rate": "single", "accuracy_thresh": "multi", "fbeta": "multi",
             "f2": "multi", "f1": "multi", "mse": "regression", "rmse": "regression", "mae": "regression",
             "r2": "regression"}


def resolve_metrics(metrics: Sequence[str | Metric] | str | None, task: str,
                    thresh: float = 0.5) -> dict[str, Metric]:
    """Names (or callables) → {name: fn}; None means the task's defaults."""
    if metrics is None:
        metrics = DEFAULT_METRICS[task]
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    out: dict[str, Metric] = {}
    for m in metrics:
        if callable(m):
            out[getattr(m, "__name__", "metric")] = m
            continue
        if m not in METRICS:
            raise PixclassError(f"unknown metric '{m}': choose from {', '.join(METRICS)}")
        if _TASKS_OF[m] != task:
            raise PixclassError(f"metric '{m}' is for {_TASKS_OF[m]} tasks, but this data is {task}")
        fn = METRICS[m]
        out[m] = partial(fn, thresh=thresh) if _TASKS_OF[m] == "multi" else fn
    return out


def per_class_report(out: torch.Tensor, y: torch.Tensor, classes: Sequence[str], task: str,
                     thresh: float = 0.5) -> list[dict]:
    """Precision, recall, F1 and support for each class (each tag for multi-label)."""
    n = len(classes)
    if task == "multi":
        pred = out.sigmoid() > thresh
        truth = y.bool()
    else:
        pred = torch.nn.functional.one_hot(out.argmax(1), n).bool()
        truth = torch.nn.functional.one_hot(y, n).bool()
    rows = []
    for i, name in enumerate(classes):
        tp = (pred[:, i] & truth[:, i]).sum().item()
        fp = (pred[:, i] & ~truth[:, i]).sum().item()
        fn = (~pred[:, i] & truth[:, i]).sum().item()
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        rows.append({"class": name, "precision": p, "recall": r, "f1": f1, "support": tp + fn})
    return rows
