"""Cached body features for the frozen stage.

While the body is frozen its output for an un-augmented image never changes, so the pooled
features of every train and valid image are computed once (eval mode, no grad) and the head
trains on them: frozen epochs and the LR finder then cost milliseconds. Training features of a
classifier use autocast where it is native (bf16 on such CPUs, AMP on CUDA); validation and test
features are fp32, as the exported model predicts, so the metrics a run reports are the ones its
model gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pixclass.train.loop import gather_outputs

if TYPE_CHECKING:
    from pixclass.train.learner import Learner


class FeatureCache:
    """Pooled body features and targets per split, computed on first use."""

    def __init__(self, learn: "Learner"):
        self.learn = learn
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, F) on the learner's device, targets (N, ...))."""
        key = f"{split}@{self.learn.data.size}"
        if key not in self._cache:
            self._cache[key] = self._compute(split)
        return self._cache[key]

    @torch.no_grad()
    def recalibrate_head_bn(self) -> None:
        """Set the head's BatchNorm running statistics to their exact values on all training features.

        Running averages over a few hundred small batches lag behind the weights (badly on
        small datasets); with the features in memory the exact statistics cost one forward pass.
        """
        mlp = self.learn.model.head.mlp
        norms = [m for m in mlp.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        x, _ = self.get("train")
        saved = [(m, m.momentum) for m in norms]
        was_training = mlp.training
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass gives the exact mean/var
        mlp.train()
        for m in mlp.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()  # statistics as seen at inference, where dropout is off
        if len(x) > 1:
            mlp(x)
        for m, momentum in saved:
            m.momentum = momentum
        mlp.train(was_training)

    def clear(self) -> None:
        self._cache.clear()

    def _compute(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        learn = self.learn
        model = learn.model
        was_training = model.training
        model.eval()

        def body_features(x: torch.Tensor) -> torch.Tensor:
            return model.head.pool(model.body(x))

        loader = learn.data.loader(split, shuffle=False, augment=False)
        try:
            # Regression stays fp32 throughout: bf16 keeps ~3 significant digits, and a continuous
            # target reads them directly (a tiny brightness regressor learned nothing from bf16
            # features, and fine from fp32); a class's argmax is robust to that rounding.
            amp = learn.amp if split == "train" and learn.data.task != "regression" else None
            feats, y = gather_outputs(body_features, _announce(learn, split, learn.data.batches(loader), len(loader)),
                                      learn.device, amp, learn.channels_last)
        finally:
            model.train(was_training)
        return feats.to(learn.device), y.to(learn.device)


def _announce(learn: "Learner", split: str, batches, total: int):
    from pixclass.train.loop import progress_bar, tracked

    with progress_bar(learn.progress) as bar:
        task = bar.add_task(f"body features ({split})", total=total, loss="")
        yield from tracked(batches, bar, task)
