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
    w, b = fit_linear(x_train, y_train, "single", n_classes, c, max_iter)
    pred = linear_outputs(x_valid, w, b).argmax(1)
    return (pred == y_valid.cpu()).double().mean().item()


def fit_linear(x: torch.Tensor, y: torch.Tensor, task: str, n_out: int, c: float = 1.0,
               max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (F, n_out) and bias (n_out,) of an L2-regularised linear model, fitted with L-BFGS
    in float64 on the CPU: multinomial logistic regression ("single", `y` class indices), one
    logistic regression per tag ("multi", `y` (N, n_out) 0/1) or ridge regression ("regression",
    `y` (N,) values). The loss is summed over items (and tags) plus ½‖W‖² / c, as scikit-learn's.
    """
    x = x.double().cpu()
    y = y.cpu()
    w = torch.zeros(x.shape[1], n_out, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_out, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-6,
                            line_search_fn="strong_wolfe", history_size=20)
    if task == "multi":
        y = y.double()
    elif task == "regression":
        y = y.double().reshape(-1, 1)

    def data_loss(out: torch.Tensor) -> torch.Tensor:
        if task == "multi":
            return F.binary_cross_entropy_with_logits(out, y, reduction="sum")
        if task == "regression":
            return 0.5 * ((out - y) ** 2).sum()
        return F.cross_entropy(out, y, reduction="sum")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = data_loss(x @ w + b) + 0.5 / c * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def linear_outputs(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Raw outputs (logits, or values for regression) of a `fit_linear` model, float64 on the CPU."""
    with torch.no_grad():
        return x.double().cpu() @ w + b


def probe_from_cache(learn) -> float | None:
    """The probe's validation accuracy on a Learner's cached features (single-label only)."""
    if learn.data.task != "single" or not learn.data.valid_paths:
        return None
    (xt, yt), (xv, yv) = learn.features.get("train"), learn.features.get("valid")
    n = learn.model.head.cfg.n_in  # concat pooling puts the average-pooled half first
    return linear_probe_accuracy(xt[:, :n], yt, xv[:, :n], yv, learn.data.c)
