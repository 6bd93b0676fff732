"""A linear probe: L2-regularised logistic regression on the frozen body's average-pooled features.

The floor the default recipe must beat: it costs seconds once the features are cached, and
it tells a user whether fine-tuning bought anything over "frozen features + a linear model".
Regularisation matches scikit-learn's default (C = 1: ½‖W‖² plus the summed loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_valid: torch.Tensor,
                          y_valid: torch.Tensor, n_classes: int, c: float = 1.0, max_iter: int = 500) -> float:
    """Validation accuracy of a multinomial logistic regression trained with L-BFGS.

    Args:
        x_train, x_valid: (N, F) features; y_train, y_valid: (N,) class indices.
        c: inverse regularisation strength, as scikit-learn's `C`.
    """
    x_train, x_valid = x_train.double().cpu(), x_valid.double().cpu()
    w = torch.zeros(x_train.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-6,
                            line_search_fn="strong_wolfe", history_size=20)
    y = y_train.cpu()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x_train @ w + b, y, reduction="sum") + 0.5 / c * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (x_valid @ w + b).argmax(1)
    return (pred == y_valid.cpu()).double().mean().item()


def probe_from_cache(learn) -> float | None:
    """The probe's validation accuracy on a Learner's cached features (single-label only)."""
    if learn.data.task != "single" or not learn.data.valid_paths:
        return None
    (xt, yt), (xv, yv) = learn.features.get("train"), learn.features.get("valid")
    n = learn.model.head.cfg.n_in  # concat pooling puts the average-pooled half first
    return linear_probe_accuracy(xt[:, :n], yt, xv[:, :n], yv, learn.data.c)
