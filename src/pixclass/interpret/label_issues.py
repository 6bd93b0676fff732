"""Label issues over a whole dataset (train and valid) from out-of-fold predictions.

Owns `label_issues(learn)`: the cached, un-augmented pooled body features of every labelled image
(`learn.features`) are split into K seeded, stratified folds; a model fitted on K-1 folds predicts
the held-out one, so every image gets an honest out-of-sample probability, loss and suggestion.
cleanlab turns those into a label-quality score and a flag per image (confident learning). This
is what fastai's cleaner cannot do: it ranks one split by the loss of a model that may have
trained on it.

The fold model is a regularised linear model on the features (`train.probe.fit_linear`) or the
run's own head recipe (`fold_model="head"`). The features come from the learner's current body:
after an unfrozen stage that body has seen the training labels, so the train split's predictions
are then less out-of-sample than the valid split's; the frozen stage's (or pretrained) body gives
the honest ranking.

A workflow layer: imports data, models and train; nothing below imports it. cleanlab is imported
inside the functions that use it.
"""

from __future__ import annotations

import csv
import io
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixclass.errors import PixclassError

COLUMNS = ("path", "label", "suggested", "score", "loss", "split", "issue")
FOLD_MODELS = ("linear", "head")
# Measured on elpv (2,624 photos, 10 % of labels flipped, lite0 features at 128 px, 5 folds, a busy
# 2-core CPU), flips found within a budget of the flip count: "type" linear 98.5 % in 27 s, head
# 98.9 % in 769 s; "defect" linear 52.3 % in 39 s, head 56.5 % in 375 s. The head finds a few more
# on the hard task at 10-30× the time: the default is the one that costs seconds.
DEFAULT_FOLD_MODEL = "linear"
# L2 strength of the linear fold model per training item, on standardised features:
# C = 1 / (LINEAR_L2 × items), so one penalty suits 30 images or 30,000. Measured on elpv with 10 %
# flipped (5 folds, ~2,100 training items each), flips found within a budget of the flip count:
# C 1e-4 / 1e-3 / 1e-2 / 1e-1 / 1: type 99.6 / 98.5 / 93.5 / 80.2 / 63.4 %, defect 48.1 / 52.3 /
# 54.2 / 43.1 / 35.1 %. C = 1e-3 (LINEAR_L2 ≈ 0.5) is near the best of both.
LINEAR_L2 = 0.5
# The head recipe's frozen stage: `pixclass train`'s default epochs, `Learner.fit_one_cycle`'s lr.
HEAD_EPOCHS, HEAD_LR = 20, 2e-3


@dataclass(frozen=True)
class IssueRow:
    """One image: its given label, the out-of-fold suggestion, suspicion and loss."""

    path: Path
    label: str
    suggested: str
    score: float  # 1 - cleanlab's label quality score: higher is more suspicious
    loss: float  # out-of-fold loss (cross-entropy, mean binary cross-entropy, squared error)
    split: str  # "train" or "valid"
    issue: bool  # flagged by cleanlab's find_label_issues

    def cells(self) -> list[str]:
        return [str(self.path), self.label, self.suggested, f"{self.score:.6f}", f"{self.loss:.6f}", self.split,
                "1" if self.issue else "0"]


@dataclass
class LabelIssues:
    """Every labelled image ranked by how suspicious its label is (most suspicious first).

    Attributes:
        rows: one `IssueRow` per image, most suspicious first.
        probs: out-of-fold probabilities (N, K) (single: softmax, multi: sigmoid per tag) or
            predicted values (N,) for regression, in dataset order (`paths`).
        paths, splits: the images in dataset order (train then valid) and their split.
        task, classes: as `learn.data`.
        folds, seed, fold_model: how the predictions were made; seconds: how long it took.
    """

    rows: list[IssueRow]
    probs: np.ndarray
    paths: list[Path]
    splits: list[str]
    task: str
    classes: list[str]
    folds: int
    seed: int
    fold_model: str
    seconds: float

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_issues(self) -> int:
        """How many images cleanlab flags."""
        return sum(r.issue for r in self.rows)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write `path,label,suggested,score,loss,split,issue`, most suspicious first (atomically)."""
        from pixclass.files import atomic_write_text

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(r.cells() for r in self.rows)
        atomic_write_text(path, text.getvalue())
        return Path(path)

    def __repr__(self) -> str:
        return (f"LabelIssues({len(self.rows)} images, {self.n_issues} flagged; {self.folds} folds, "
                f"{self.fold_model} fold model, {self.seconds:.1f} s)")


def label_issues(learn: Any, folds: int = 5, seed: int = 0, fold_model: str = DEFAULT_FOLD_MODEL) -> LabelIssues:
    """Rank every train and valid image of `learn.data` by how likely its label is wrong.

    Args:
        learn: a `Learner`; only its cached features, data and head recipe are read.
        folds: K, the number of out-of-fold splits (2 ≤ K ≤ the smallest class's image count).
        seed: the fold assignment's (and the head recipe's) seed.
        fold_model: "linear" (L2-regularised logistic / ridge regression on the average-pooled
            features) or "head" (a fresh copy of the learner's head trained as its frozen stage).
    """
    if fold_model not in FOLD_MODELS:
        raise PixclassError(f"unknown fold model '{fold_model}': choose {' or '.join(FOLD_MODELS)}")
    t0 = time.perf_counter()
    data = learn.data
    task = data.task
    labels = list(data.train_labels) + list(data.valid_labels)
    paths = list(data.train_paths) + list(data.valid_paths)
    splits = ["train"] * len(data.train_paths) + ["valid"] * len(data.valid_paths)
    targets = _targets(data, task)
    check_folds(folds, targets, task, data.classes)
    x = _features(learn, len(paths))
    fold_of = assign_folds(targets, task, folds, seed)
    probs = _out_of_fold(learn, x, targets, fold_of, folds, fold_model, seed)
    quality, flagged = _cleanlab(task, targets, probs)
    from pixclass.interpret.interpretation import Interpretation

    interp = Interpretation(probs, targets, data.classes, task, threshold=learn.thresh)
    losses, preds = interp.losses(), interp.preds
    score = np.clip(1.0 - quality, 0.0, 1.0)
    order = np.lexsort((np.arange(len(paths)), -losses, -score))  # score, then loss, then dataset order
    rows = [IssueRow(Path(paths[i]), _label_text(labels[i], task, data.classes, targets[i]),
                     _suggestion_text(preds[i], task, data.classes), float(score[i]), float(losses[i]),
                     splits[i], bool(flagged[i])) for i in order]
    return LabelIssues(rows, probs, [Path(p) for p in paths], splits, task, list(data.classes), folds, seed,
                       fold_model, time.perf_counter() - t0)


# ----- data -----------------------------------------------------------------------------------
def _targets(data: Any, task: str) -> np.ndarray:
    """Encoded targets of train then valid: class indices, (N, K) 0/1, or values."""
    dtype = {"single": np.int64, "multi": np.float64}.get(task, np.float64)
    return np.array(data.targets("train") + data.targets("valid"), dtype=dtype)


def _features(learn: Any, n: int):
    """The cached pooled features of train then valid, (N, F) on the CPU, float32."""
    import torch

    parts = [learn.features.get("train")[0]]
    if learn.data.valid_paths:
        parts.append(learn.features.get("valid")[0])
    x = torch.cat([p.float().cpu() for p in parts])
    if len(x) != n:
        raise PixclassError(f"{n - len(x)} of the {n} images could not be read (skipped): run 'pixclass verify' "
                            "on the data, then rank its labels")
    return x


def check_folds(folds: int, targets: np.ndarray, task: str, classes: list[str]) -> None:
    """Refuse K < 2, or K larger than the smallest class (tag) count: a fold would then miss it."""
    if folds < 2:
        raise PixclassError(f"folds must be at least 2 (a model trained on K-1 folds predicts the K-th); got {folds}")
    if task == "regression":
        if folds > len(targets):
            raise PixclassError(f"folds ({folds}) is more than the {len(targets)} images: use at most {len(targets)}")
        return
    counts = np.bincount(targets, minlength=len(classes)) if task == "single" else targets.sum(0).astype(int)
    present = [(int(n), c) for n, c in zip(counts, classes) if n > 0]
    smallest, name = min(present)
    if folds > smallest:
        kind = "tag" if task == "multi" else "class"
        raise PixclassError(f"folds ({folds}) is more than the {smallest} image{'s' if smallest > 1 else ''} of "
                            f"{kind} '{name}': every fold needs one; use --folds {max(smallest, 2)} or fewer"
                            + ("" if smallest > 1 else f", or add images of '{name}'"))


def assign_folds(targets: np.ndarray, task: str, folds: int, seed: int) -> np.ndarray:
    """The fold (0..K-1) of every item: stratified by class (single), by each item's rarest tag
    (multi), shuffled (regression); the same for the same seed."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(targets)
    if task == "single":
        key = targets
    elif task == "multi":
        counts = targets.sum(0)
        rarity = np.where(targets > 0, counts[None, :], np.inf)  # an item's rarest tag decides its stratum
        key = np.where(np.isfinite(rarity.min(1)), rarity.argmin(1), -1)
    else:
        key = None
    fold_of = np.zeros(n, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn: "the least populated class has only ..."
        try:
            splits = (StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(n), key)
                      if key is not None else KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n)))
            for k, (_, held_out) in enumerate(splits):
                fold_of[held_out] = k
        except ValueError:  # multi-label strata too small for stratification: plain shuffled folds
            for k, (_, held_out) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n))):
                fold_of[held_out] = k
    return fold_of


# ----- fold models ------------------------------------------------------------------------------
def _out_of_fold(learn: Any, x, targets: np.ndarray, fold_of: np.ndarray, folds: int, fold_model: str,
                 seed: int) -> np.ndarray:
    """Activated predictions of every item by the model that did not see its fold."""
    import torch

    y = torch.from_numpy(targets)
    out = None
    for k in range(folds):
        train, held = torch.from_numpy(fold_of != k), torch.from_numpy(fold_of == k)
        if fold_model == "linear":
            raw = _linear_fold(learn, x[train], y[train], x[held])
        else:
            raw = _head_fold(learn, x[train], y[train], x[held], seed * 1009 + k)
        probs = learn.activate(raw.float()).double().numpy()
        if out is None:
            out = np.zeros((len(targets),) + probs.shape[1:], dtype=np.float64)
        out[held.numpy()] = probs
    return out[:, 0] if learn.data.task == "regression" else out


def _linear_fold(learn: Any, x_train, y_train, x_held):
    from pixclass.train.probe import fit_linear, linear_outputs

    n = learn.model.head.cfg.n_in  # concat pooling puts the average-pooled half first, as the probe uses
    x_train, x_held = x_train[:, :n].double(), x_held[:, :n].double()
    # Standardised on the training folds, so that one C suits any body's feature scale.
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
    w, b = fit_linear((x_train - mean) / std, y_train, learn.data.task, learn.data.c,
                      c=1.0 / (LINEAR_L2 * len(x_train)))
    return linear_outputs((x_held - mean) / std, w, b)


def _head_fold(learn: Any, x_train, y_train, x_held, seed: int):
    """A fresh head of the learner's shape, trained on cached features as its frozen stage is
    (one-cycle AdamW, the learner's loss, exact BatchNorm statistics at the end)."""
    import torch

    from pixclass.models.head import Head
    from pixclass.train import loop
    from pixclass.train.schedule import lr_schedule_for, make_optimizer, one_cycle

    bs = learn.data.bs
    task = learn.data.task
    y_train = y_train.long() if task == "single" else y_train.float()
    if task == "regression":
        y_train = y_train.reshape(-1, 1)  # (N, 1) like the head's output, as the data loaders give it
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(seed)
        mlp = Head(learn.model.head.cfg).mlp
        opt = make_optimizer([list(mlp.parameters())], [HEAD_LR], learn.wd)
        sched = one_cycle(opt, lr_schedule_for([HEAD_LR]), HEAD_EPOCHS * loop.n_feature_batches(len(x_train), bs))
        ctx = loop.StepContext(mlp, learn.loss_fn, opt, sched, torch.device("cpu"), None, False)
        mlp.train()
        for epoch in range(HEAD_EPOCHS):
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            loop.train_steps(ctx, loop.feature_batches(x_train, y_train, bs, g), lambda *_: None)
        _exact_bn_stats(mlp, x_train)
        mlp.eval()
        with torch.no_grad():
            return mlp(x_held)


def _exact_bn_stats(mlp, x) -> None:
    """BatchNorm running statistics set to their exact values on `x` (dropout off), as the
    Learner does after each cached epoch."""
    import torch

    norms = [m for m in mlp.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    mlp.train()
    for m in mlp.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    with torch.no_grad():
        mlp(x)


# ----- cleanlab -----------------------------------------------------------------------------------
def _cleanlab(task: str, targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's label quality scores (1 = clean) and issue flags from out-of-fold predictions."""
    if task == "single":
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        return (get_label_quality_scores(targets, probs),
                find_label_issues(targets, probs, n_jobs=1))
    if task == "multi":
        from cleanlab.multilabel_classification.filter import find_label_issues
        from cleanlab.multilabel_classification.rank import get_label_quality_scores

        tag_lists = [list(np.flatnonzero(t > 0)) for t in targets]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-tag class-imbalance notes on tiny data
            return (get_label_quality_scores(tag_lists, probs),
                    find_label_issues(tag_lists, probs, n_jobs=1))
    from cleanlab.regression.rank import get_label_quality_scores

    # cleanlab flags regression labels only by refitting its own model (regression.learn.
    # CleanLearning); from given predictions it scores them (OUTRE). Flag a residual beyond
    # 3 robust standard deviations (1.4826 × the median absolute residual) instead.
    residual = np.abs(probs - targets)
    spread = 1.4826 * np.median(residual)
    return get_label_quality_scores(targets, probs), residual > 3 * max(spread, 1e-12)


def _label_text(label: Any, task: str, classes: list[str], target: Any) -> str:
    if task == "multi":
        return " ".join(classes[i] for i in np.flatnonzero(target > 0))
    if task == "regression":
        return f"{float(label):.6g}"
    return str(label)


def _suggestion_text(pred: Any, task: str, classes: list[str]) -> str:
    if task == "multi":
        return " ".join(classes[i] for i in np.flatnonzero(pred > 0))
    if task == "regression":
        return f"{float(pred):.6g}"
    return classes[int(pred)]
