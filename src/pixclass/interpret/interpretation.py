"""`Interpretation`: what a model got wrong on a labelled split, computed from plain arrays.

Owns the numbers (confusion matrices, most confused pairs, per-item losses, top losses, per-class
precision/recall/F1, multi-label per-tag thresholds tuned for F-beta) and their plots (confusion
matrix, top-losses grid with Grad-CAM heatmaps on request, regression residuals).
Built from probabilities, targets, class names, the task and the image paths, so it works the same
on a Learner's predictions (`from_learner`) or on any other model's. Plots use
`matplotlib.figure.Figure` directly (no pyplot: headless, notebooks), return the figure and save
it when given a path. Torch-free: tensors are accepted and converted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixclass.errors import PixclassError

TASKS = ("single", "multi", "regression")
# Probabilities are clipped before the log: a confident mistake costs at most -log(1e-7) ≈ 16.1
# (the clip of torch's BCELoss is 100; this keeps one item from dwarfing a whole plot).
_EPS = 1e-7


def _array(x: Any, name: str) -> np.ndarray:
    """A float64 numpy copy of an array or tensor (the caller's object is never changed)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        return np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise PixclassError(f"Interpretation: {name} is not numeric ({err})") from None


class Interpretation:
    """What a model predicted on one labelled split, and where it went wrong.

    Args:
        probs: (N, K) probabilities (softmax for "single", sigmoid per tag for "multi"), or (N,) /
            (N, 1) predicted values for "regression".
        targets: (N,) class indices ("single"), (N, K) 0/1 ("multi") or (N,) values ("regression").
        classes: the K class (tag) names; ignored for regression.
        task: "single", "multi" or "regression".
        paths: the N image files, in the same order (needed only by `plot_top_losses`).
        threshold: a multi-label tag is predicted when its probability is above this: one number,
            or one per tag (as `tune_thresholds` gives and a model can carry).
        heatmapper: `(path, class index) -> (picture, heatmap)`, for `plot_top_losses(heatmap=True)`;
            `from_learner` gives a Grad-CAM one (`pixclass.interpret.heatmap.Heatmapper`).
    """

    def __init__(self, probs: Any, targets: Any, classes: Sequence[str], task: str,
                 paths: Sequence[str | os.PathLike] | None = None, threshold: float | Sequence[float] = 0.5,
                 heatmapper: Callable[[Path, int], tuple[np.ndarray, np.ndarray]] | None = None):
        if task not in TASKS:
            raise PixclassError(f"Interpretation: task must be one of {', '.join(TASKS)}; got '{task}'")
        self.task, self.classes = task, [str(c) for c in classes]
        self.threshold = _thresholds(threshold, len(self.classes))
        self.heatmapper = heatmapper
        self.probs, self.targets = _array(probs, "probs"), _array(targets, "targets")
        if task == "regression":
            self.probs, self.targets = self.probs.reshape(len(self.probs), -1)[:, 0], self.targets.reshape(-1)
        n = len(self.probs)
        self.paths = [Path(p) for p in paths] if paths is not None else None
        self._check_shapes(n)

    def _check_shapes(self, n: int) -> None:
        k = len(self.classes)
        want = {"single": ((n, k), (n,)), "multi": ((n, k), (n, k))}.get(self.task, ((n,), (n,)))
        if self.probs.shape != want[0] or self.targets.shape != want[1]:
            raise PixclassError(f"Interpretation ({self.task}, {k} classes): probs {self.probs.shape} and targets "
                                f"{self.targets.shape} should be {want[0]} and {want[1]}")
        if self.paths is not None and len(self.paths) != n:
            raise PixclassError(f"Interpretation: {len(self.paths)} paths for {n} predictions")
        if self.task == "single" and n and (self.targets.min() < 0 or self.targets.max() >= k
                                            or not np.all(self.targets == np.round(self.targets))):
            raise PixclassError(f"Interpretation: single-label targets must be class indices 0..{k - 1}")

    @classmethod
    def from_learner(cls, learn: Any, split: str = "valid") -> Interpretation:
        """The interpretation of `learn`'s predictions on a labelled split ("valid" or "train")."""
        paths = learn.data.paths(split)
        if not paths:
            raise PixclassError(f"nothing to interpret: the {split} split is empty. Train with a validation "
                                "split (--valid-pct or --valid-col)")
        probs, y = learn.get_preds(split)
        if y is None:
            raise PixclassError(f"cannot interpret the {split} split: it has no labels")
        from pixclass.interpret.heatmap import Heatmapper

        heatmapper = Heatmapper(learn.model, learn.data.size, learn.data.mean, learn.data.std, learn.data.resize)
        return cls(probs, y, learn.data.classes, learn.data.task, paths, learn.thresh, heatmapper)

    # ----- what was predicted ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.probs)

    @property
    def preds(self) -> np.ndarray:
        """Predicted class indices (single), 0/1 per tag (multi) or values (regression)."""
        if self.task == "single":
            return self.probs.argmax(1)
        if self.task == "multi":
            return (self.probs > self.threshold).astype(np.int64)  # as the metrics and the predictor
        return self.probs

    def _need(self, *tasks: str, what: str) -> None:
        if self.task not in tasks:
            raise PixclassError(f"{what} needs a {' or '.join(tasks)} task; this interpretation is {self.task}")

    # ----- numbers -----------------------------------------------------------------------------
    def confusion_matrix(self, normalize: bool = False) -> np.ndarray:
        """Single-label: (K, K), rows the actual class, columns the predicted one. Multi-label:
        (K, 2, 2) per tag, [[TN, FP], [FN, TP]]. `normalize`: each row divided by its sum (a row
        with no items stays zeros)."""
        self._need("single", "multi", what="a confusion matrix")
        k = len(self.classes)
        if self.task == "single":
            cm = np.zeros((k, k), dtype=np.int64)
            np.add.at(cm, (self.targets.astype(np.int64), self.preds), 1)
        else:
            t, p = self.targets.astype(bool), self.preds.astype(bool)
            cm = np.stack([np.array([[np.sum(~t[:, c] & ~p[:, c]), np.sum(~t[:, c] & p[:, c])],
                                     [np.sum(t[:, c] & ~p[:, c]), np.sum(t[:, c] & p[:, c])]]) for c in range(k)]
                          ).reshape(k, 2, 2).astype(np.int64)
        if not normalize:
            return cm
        rows = cm.sum(-1, keepdims=True)
        return np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """(actual, predicted, count) of every wrong pair seen at least `min_val` times; most
        frequent first, ties by name (single-label only)."""
        self._need("single", what="most_confused")
        cm = self.confusion_matrix()
        pairs = [(self.classes[a], self.classes[p], int(cm[a, p])) for a in range(len(cm)) for p in range(len(cm))
                 if a != p and cm[a, p] >= min_val and cm[a, p] > 0]
        return sorted(pairs, key=lambda x: (-x[2], x[0], x[1]))

    def losses(self) -> np.ndarray:
        """Per item: cross-entropy of the probabilities (single), mean binary cross-entropy over
        the tags (multi), squared error (regression)."""
        if self.task == "regression":
            return (self.probs - self.targets) ** 2
        p = np.clip(self.probs, _EPS, 1 - _EPS)
        if self.task == "single":
            return -np.log(p[np.arange(len(p)), self.targets.astype(np.int64)])
        t = self.targets
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(1)

    def top_losses(self, k: int | None = None) -> list[tuple[int, float]]:
        """(item index, loss) of the `k` (default: all) items with the highest loss, highest first;
        equal losses in item order."""
        losses = self.losses()
        order = np.argsort(-losses, kind="stable")[:k]
        return [(int(i), float(losses[i])) for i in order]

    def per_class(self) -> list[dict[str, Any]]:
        """Per class (tag): precision, recall, F1 and support (items actually of it); a ratio with
        nothing to divide by is 0.0."""
        self._need("single", "multi", what="per-class precision and recall")
        cm = self.confusion_matrix()
        out = []
        for c, name in enumerate(self.classes):
            if self.task == "single":
                tp, fp, fn = int(cm[c, c]), int(cm[:, c].sum() - cm[c, c]), int(cm[c].sum() - cm[c, c])
            else:
                tp, fp, fn = int(cm[c, 1, 1]), int(cm[c, 0, 1]), int(cm[c, 1, 0])
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": tp + fn})
        return out

    def tune_thresholds(self, beta: float = 1.0) -> list[float]:
        """Multi-label: per tag, the threshold (0.05 to 0.95 in steps of 0.01) with the best F-beta on
        this split; among equal scores the one nearest 0.5. Tuned on the split it is scored on, so
        that split's scores become optimistic: tune on validation, judge on a test split.
        Give the result to `Learner.export(thresholds=...)` to ship it in the model."""
        self._need("multi", what="threshold tuning")
        if beta <= 0:
            raise PixclassError(f"tune_thresholds: beta must be positive, not {beta}")
        grid = np.round(np.arange(5, 96) / 100, 2)
        b2, out = beta * beta, []
        for c in range(len(self.classes)):
            on, actual = self.probs[:, c][None, :] > grid[:, None], self.targets[:, c][None, :] > 0.5
            tp, fp, fn = (on & actual).sum(1), (on & ~actual).sum(1), (~on & actual).sum(1)
            denom = (1 + b2) * tp + b2 * fn + fp
            score = np.where(denom > 0, (1 + b2) * tp / np.maximum(denom, 1), 0.0)
            best = np.flatnonzero(np.isclose(score, score.max()))
            out.append(float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]]))
        return out

    # ----- plots -------------------------------------------------------------------------------
    def plot_confusion_matrix(self, path: str | os.PathLike | None = None, normalize: bool = False):
        """The confusion matrix as a figure (multi-label: one 2×2 panel per tag)."""
        from matplotlib.figure import Figure

        cm = self.confusion_matrix(normalize)
        fmt = "{:.2f}" if normalize else "{:d}"
        if self.task == "single":
            k = len(self.classes)
            side = max(4.0, 0.5 * k + 2)
            fig = Figure(figsize=(side, side))
            _matrix(fig.add_subplot(1, 1, 1), cm, self.classes, self.classes, fmt, "Confusion matrix")
        else:
            k = len(self.classes)
            cols = min(4, k)
            rows = math.ceil(k / cols)
            fig = Figure(figsize=(3 * cols, 3 * rows))
            for c, name in enumerate(self.classes):
                _matrix(fig.add_subplot(rows, cols, c + 1), cm[c], ["no", "yes"], ["no", "yes"], fmt, name)
        fig.tight_layout()
        return _saved(fig, path)

    def plot_top_losses(self, k: int = 9, path: str | os.PathLike | None = None, heatmap: bool = False):
        """The `k` highest-loss images, titled actual/predicted/loss/probability of the actual class
        (multi-label and regression: actual/predicted/loss).

        `heatmap`: overlay a Grad-CAM heatmap of the evidence for the predicted class (multi-label:
        the tag the model got most wrong; regression: the output) on the model's own input picture,
        brought to its square as the model saw it."""
        from matplotlib.figure import Figure

        from pixclass.data.images import open_image
        from pixclass.errors import ImageReadError

        if self.paths is None:
            raise PixclassError("plot_top_losses needs the image paths: build the Interpretation with paths=")
        if heatmap and self.heatmapper is None:
            raise PixclassError("plot_top_losses(heatmap=True) needs the model: build the Interpretation with "
                                "Interpretation.from_learner (or pass heatmapper=)")
        top = self.top_losses(k)
        cols = max(1, min(3, len(top)))
        rows = max(1, math.ceil(len(top) / cols))
        fig = Figure(figsize=(3 * cols, 3.3 * rows))
        for n, (i, loss) in enumerate(top):
            ax = fig.add_subplot(rows, cols, n + 1)
            ax.axis("off")
            try:
                if heatmap:
                    picture, heat = self.heatmapper(self.paths[i], self._explained_class(i))
                    ax.imshow(picture)
                    ax.imshow(heat, cmap="magma", alpha=0.5, vmin=0.0, vmax=1.0)
                else:
                    ax.imshow(np.asarray(open_image(self.paths[i])))
            except ImageReadError:
                ax.text(0.5, 0.5, f"unreadable:\n{self.paths[i].name}", ha="center", va="center", fontsize=8)
            ax.set_title(self._title(i, loss), fontsize=8)
        legend = "actual/predicted/loss" + ("/probability of actual" if self.task == "single" else "")
        fig.suptitle(legend + ("; heatmap: evidence for the prediction" if heatmap else ""), fontsize=9)
        fig.tight_layout()
        return _saved(fig, path)

    def _explained_class(self, i: int) -> int:
        """The output a heatmap explains for item i: the predicted class (single), the tag with the
        largest error (multi), the value (regression)."""
        if self.task == "single":
            return int(self.preds[i])
        if self.task == "multi":
            return int(np.abs(self.probs[i] - self.targets[i]).argmax())
        return 0

    def _title(self, i: int, loss: float) -> str:
        if self.task == "single":
            a, p = int(self.targets[i]), int(self.preds[i])
            return f"{self.classes[a]}/{self.classes[p]}/{loss:.2f}/{self.probs[i, a]:.2f}"
        if self.task == "multi":
            def tags(row: np.ndarray) -> str:
                return ";".join(c for c, on in zip(self.classes, row) if on) or "-"
            return f"{tags(self.targets[i] > 0.5)}/{tags(self.preds[i])}/{loss:.2f}"
        return f"{self.targets[i]:.3g}/{self.probs[i]:.3g}/{loss:.3g}"

    def plot_residuals(self, path: str | os.PathLike | None = None):
        """Regression: predicted against actual (with the identity line), and residuals
        (predicted − actual) against predicted (with zero)."""
        from matplotlib.figure import Figure

        self._need("regression", what="a residual plot")
        fig = Figure(figsize=(9, 4))
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        ax1.scatter(self.targets, self.probs, s=10)
        if len(self):
            lo, hi = float(min(self.targets.min(), self.probs.min())), float(max(self.targets.max(), self.probs.max()))
            ax1.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax1.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        ax2.scatter(self.probs, self.probs - self.targets, s=10)
        ax2.axhline(0, color="grey", lw=1)
        ax2.set(xlabel="predicted", ylabel="residual (predicted − actual)", title="Residuals")
        fig.tight_layout()
        return _saved(fig, path)

    def __repr__(self) -> str:
        kind = "regression" if self.task == "regression" else f"{self.task}, {len(self.classes)} classes"
        return f"Interpretation({kind}; {len(self)} items)"


def _thresholds(threshold: float | Sequence[float], k: int) -> float | np.ndarray:
    """One threshold, or one per tag as an array; each strictly between 0 and 1."""
    values = np.atleast_1d(np.array(threshold, dtype=np.float64))
    if values.ndim != 1 or len(values) not in (1, k) or not np.all((values > 0) & (values < 1)):
        raise PixclassError(f"Interpretation: threshold must be one number or {k} numbers, each between 0 and 1; "
                            f"got {threshold!r}")
    return float(values[0]) if np.ndim(threshold) == 0 else values


def _matrix(ax, cm: np.ndarray, rows: list[str], cols: list[str], fmt: str, title: str) -> None:
    """One annotated matrix: rows actual, columns predicted."""
    ax.imshow(cm, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(cols)), cols, rotation=90 if len(cols) > 2 else 0)
    ax.set_yticks(range(len(rows)), rows)
    ax.set(xlabel="predicted", ylabel="actual", title=title)
    top = cm.max() if cm.size else 0
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, fmt.format(v.item()), ha="center", va="center", fontsize=8,
                color="white" if top and v > top / 2 else "black")


def _saved(fig, path: str | os.PathLike | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
    return fig
