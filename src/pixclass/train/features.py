"""Cached body features for the frozen stage.

While the body is frozen its output for an un-augmented image never changes, so the pooled
features of every train and valid image are computed once (eval mode, no grad) and the head
trains on them: frozen epochs and the LR finder then cost milliseconds. Training features of a
classifier use autocast where it is native (bf16 on such CPUs, AMP on CUDA); validation and test
features are fp32, as the exported model predicts, so the metrics a run reports are the ones its
model gives.

Owns `FeatureCache` and `recalibrate_batchnorm`. The cache knows nothing of a Learner: it is
given a module computing pooled body features, a factory of a split's batches, the current input
size and where to compute (`FeatureDevice`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from pixclass.train.loop import gather_outputs, progress_bar, tracked

# split -> (its un-augmented batches (x, y) in a fixed order, how many there are)
BatchFactory = Callable[[str], tuple[Iterable, int]]


@dataclass(frozen=True)
class FeatureDevice:
    """Where and in which precision body features are computed.

    Args:
        device: where the features are computed and kept.
        train_amp: the autocast dtype of the *training* split's features (None: fp32); the
            other splits are always fp32.
        channels_last: feed images to the body in NHWC memory format.
    """

    device: torch.device
    train_amp: torch.dtype | None
    channels_last: bool


class FeatureCache:
    """Pooled body features and targets per split and input size, computed on first use.

    Args:
        body_features: a module mapping images (B, 3, H, W) to pooled features (B, F); it runs
            in eval mode under `no_grad`, each submodule's mode restored afterwards.
        batches: `batches(split)` gives the split's un-augmented batches and their number.
        input_size: the current input size (features at another size are other features).
        settings: device, channels-last and the training features' precision.
        progress: show a bar while features are computed.
    """

    def __init__(self, body_features: torch.nn.Module, batches: BatchFactory, input_size: Callable[[], int],
                 settings: FeatureDevice, progress: bool = False):
        self.body_features = body_features
        self.batches = batches
        self.input_size = input_size
        self.settings = settings
        self.progress = progress
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, F) on the settings' device, targets (N, ...))."""
        key = f"{split}@{self.input_size()}"
        if key not in self._cache:
            self._cache[key] = self._compute(split)
        return self._cache[key]

    def clear(self) -> None:
        """Forget every split (call it whenever the body's weights may have changed)."""
        self._cache.clear()

    def _compute(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        batches, total = self.batches(split)
        amp = s.train_amp if split == "train" else None
        with _eval_mode(self.body_features):
            feats, y = gather_outputs(self.body_features, _announce(self.progress, split, batches, total),
                                      s.device, amp, s.channels_last)
        return feats.to(s.device), y.to(s.device)


@torch.no_grad()
def recalibrate_batchnorm(module: torch.nn.Module, x: torch.Tensor) -> None:
    """Set the BatchNorm running statistics in `module` to their exact values on all of `x`.

    Running averages over a few hundred small batches lag behind the weights (badly on small
    datasets); with the features in memory the exact statistics cost one forward pass. Dropout
    is off for that pass (statistics as seen at inference); `module`'s mode is kept.
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    was_training = module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass gives the exact mean/var
    module.train()
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    if len(x) > 1:
        module(x)
    for m, momentum in saved:
        m.momentum = momentum
    module.train(was_training)


@contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _announce(progress: bool, split: str, batches: Iterable, total: int) -> Iterator:
    with progress_bar(progress) as bar:
        task = bar.add_task(f"body features ({split})", total=total, loss="")
        yield from tracked(batches, bar, task)
