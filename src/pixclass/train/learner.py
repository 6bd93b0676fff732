"""`Learner`: a pretrained body with a new head, trained on an `ImageData` the fastai way.

Owns: freezing, `fit` / `fit_one_cycle` / `fine_tune`, `lr_find`, validation and predictions,
named saves, the training state of per-epoch checkpoints and restoring it (`training_state`,
`restore`; `pixclass.train.resume` writes and finds the files), and export. While the body is
frozen the body's pooled features are computed once and cached (`cache_features=True`), so
frozen epochs and the LR finder train only the head: the frozen stage costs about one forward
pass over the data.

The layer below knows nothing of the Learner: the feature cache, the loops, the checkpoint
files and the schedules take tensors, modules, callables and dicts.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pixclass.data.hashes import shared_copies
from pixclass.data.loaders import ImageData
from pixclass.errors import PixclassError
from pixclass.models.backbones import build_model
from pixclass.models.lite_packages import DEFAULT_ARCH
from pixclass.train import checkpoint as ckpt
from pixclass.train.device import pick_device, resolve_amp
from pixclass.train.features import FeatureCache, FeatureDevice, recalibrate_batchnorm
from pixclass.train.loop import (
    StepContext,
    feature_batches,
    gather_outputs,
    lr_range_test,
    n_feature_batches,
    progress_bar,
    tracked,
    train_steps,
)
from pixclass.train.losses import activation_for, loss_for
from pixclass.train.metrics import resolve_metrics
from pixclass.train.recorder import EpochTable, Recorder
from pixclass.train.resume import checkpoint_files, write_epoch_checkpoint
from pixclass.train.schedule import (
    LRFind,
    exp_lrs,
    lr_schedule_for,
    make_optimizer,
    one_cycle,
    spread_lr,
)


class Learner:
    """Train a classifier (or regressor) on `data` with an ImageNet-pretrained timm body.

    Args:
        data: the `ImageData` to train on.
        arch: a timm architecture name.
        metrics: metric names (see `pixclass.train.metrics.METRICS`); None: the task's defaults.
        loss: a loss module; None: cross-entropy / BCE-with-logits / MSE by task.
        wd: AdamW weight decay.
        pretrained: load ImageNet weights; `weights` names an explicit weights file.
        path: the run directory (named saves go to `path/checkpoints/`).
        label_smoothing: for single-label cross-entropy.
        hidden, ps, y_range: the head's hidden width, dropout (0.8 measured best on cached
            features, which carry no augmentation; fastai uses 0.5) and regression range.
        thresh: decision threshold of multi-label metrics and predictions.
        device: "cuda", "mps", "cpu" or None for the best available.
        amp: "auto", "bf16", "fp16" or None (fp32).
        channels_last: NHWC memory format (faster convolutions on CPU and GPU).
        cache_features: while frozen, train the head on cached body features.
        train_bn: when the frozen body runs (no cache), its BatchNorm layers still learn.
        bn_eval: BatchNorm layers normalise with their running statistics while training
            (their scale and shift still learn), as Keras advises for fine-tuning.
            None: on when features are cached, since the head then learned on exactly those
            statistics; switching to batch statistics at unfreeze time shifts every feature.
        checkpoint_every_epoch: write `path/checkpoints/epoch-*.safetensors` for resume.
        progress: show progress bars and the epoch table.
    """

    def __init__(
        self,
        data: ImageData,
        arch: str = DEFAULT_ARCH,
        metrics: Sequence[str | Callable] | str | None = None,
        loss: Callable | None = None,
        wd: float = 0.01,
        pretrained: bool = True,
        weights: str | None = None,
        path: str | Path = "runs/default",
        label_smoothing: float = 0.0,
        hidden: int = 512,
        ps: float = 0.8,
        y_range: tuple[float, float] | None = None,
        thresh: float = 0.5,
        device: str | None = None,
        amp: str | None = "auto",
        channels_last: bool = True,
        cache_features: bool = True,
        train_bn: bool = True,
        bn_eval: bool | None = None,
        checkpoint_every_epoch: bool = False,
        progress: bool = True,
    ):
        if data.task == "single" and len(data.classes) < 2:
            raise PixclassError(
                f"only one class ({', '.join(map(str, data.classes)) or 'none'}) in the training data: a classifier "
                "needs at least two, or it learns nothing and reports accuracy 1.0. Add a folder (or label) per class")
        self.data = data
        self.model, self.body_info = build_model(arch, data.c, pretrained, weights, hidden=hidden, ps=ps,
                                                 y_range=y_range)
        self.arch = self.body_info.arch
        data.normalize(self.body_info.mean, self.body_info.std)
        self.device = pick_device(device)
        self.amp = resolve_amp(amp, self.device)
        self.channels_last = channels_last and self.device.type != "mps"
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.loss_fn = loss or loss_for(data.task, label_smoothing)
        self.thresh = thresh
        self.metrics = resolve_metrics(metrics, data.task, thresh)
        self.wd, self.path = wd, Path(path)
        self.cache_features, self.train_bn = cache_features, train_bn
        self.bn_eval = cache_features if bn_eval is None else bn_eval
        self.checkpoint_every_epoch, self.progress = checkpoint_every_epoch, progress
        self.recorder = Recorder()
        self.table = EpochTable(list(self.metrics), enabled=progress)
        # Regression features stay fp32 throughout: bf16 keeps ~3 significant digits, and a continuous
        # target reads them directly (a tiny brightness regressor learned nothing from bf16
        # features, and fine from fp32); a class's argmax is robust to that rounding.
        train_amp = None if data.task == "regression" else self.amp
        self.features = FeatureCache(torch.nn.Sequential(self.model.body, self.model.head.pool), self._feature_batches,
                                     lambda: self.data.size, FeatureDevice(self.device, train_amp, self.channels_last),
                                     progress)
        self.epoch_offset = 0  # epochs done in earlier stages, for the table and history
        self.on_epoch_end: list[Callable[[Learner, dict], None]] = []
        self._leaks_checked = False

    # ----- freezing ----------------------------------------------------------------------------
    def freeze(self) -> None:
        """Train only the head (the body's BatchNorm layers too, unless features are cached)."""
        self.model.freeze_to(-1, self.train_bn)

    def unfreeze(self) -> None:
        """Train everything (use a `slice(lo, hi)` LR to train early layers more gently)."""
        self.model.freeze_to(0)

    def freeze_to(self, n: int) -> None:
        """Freeze the first `n` layer groups (of `len(self.model.groups)`; the last is the head)."""
        self.model.freeze_to(n, self.train_bn)

    @property
    def uses_cache(self) -> bool:
        """True when training runs on cached body features (body frozen and caching enabled)."""
        return self.cache_features and self.model.is_frozen

    # ----- training ----------------------------------------------------------------------------
    def fit_one_cycle(self, epochs: int, lr: float | slice = 2e-3, pct_start: float = 0.25, div: float = 25.0,
                      div_final: float = 1e5, wd: float | None = None, resume: dict | None = None) -> list[dict]:
        """Train `epochs` epochs with the one-cycle LR and momentum schedule peaking at `lr`.

        Args:
            lr: a float for every group, or `slice(lo, hi)` spread from early layers to the head.
            pct_start: share of the steps spent warming up.
            resume: the training state `restore` returned from a checkpoint, to continue a cycle.
        """
        return self._fit(epochs, lr, wd, schedule={"pct_start": pct_start, "div": div, "div_final": div_final},
                         resume=resume)

    def fit(self, epochs: int, lr: float | slice = 1e-3, wd: float | None = None) -> list[dict]:
        """Train `epochs` epochs at a constant learning rate."""
        return self._fit(epochs, lr, wd, schedule=None)

    def fine_tune(self, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
                  pct_start: float = 0.3) -> list[dict]:
        """fastai's recipe: `freeze_epochs` with the body frozen, then `epochs` unfrozen.

        The unfrozen stage uses half the LR, spread over the layer groups from
        `base_lr / 2 / lr_mult` (first group) to `base_lr / 2` (head).
        """
        self.freeze()
        rows = self.fit_one_cycle(freeze_epochs, base_lr, pct_start=0.99) if freeze_epochs else []
        if epochs:
            self.unfreeze()
            rows += self.fit_one_cycle(epochs, slice(base_lr / 2 / lr_mult, base_lr / 2), pct_start=pct_start, div=5.0)
        return rows

    def _fit(self, epochs: int, lr: float | slice, wd: float | None, schedule: dict | None,
             resume: dict | None = None) -> list[dict]:
        if epochs < 1:
            raise PixclassError(f"epochs must be at least 1; got {epochs}")
        self._warn_leaks()
        cached = self.uses_cache
        if not cached:
            self.features.clear()  # the body will change
        steps = self._steps_per_epoch()
        lrs = spread_lr(lr, len(self.model.groups))
        opt = make_optimizer(self.model.param_groups(), lrs, self.wd if wd is None else wd)
        sched = (one_cycle(opt, lr_schedule_for(lrs), epochs * steps, **schedule) if schedule else None)
        start = 0
        if resume is not None:
            opt.load_state_dict(resume["optimizer"])
            if sched is not None and resume.get("scheduler"):
                sched.load_state_dict(resume["scheduler"])
            ckpt.set_rng_state(resume["rng"])
            start = int(resume["epoch"]) + 1
        scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.table.header(self._stage_title(cached, epochs, lrs) if start == 0 else None)
        rows = []
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            train_loss = self._train_epoch(epoch, opt, sched, scaler, cached)
            if cached:
                recalibrate_batchnorm(self.model.head.mlp, self.features.get("train")[0])
            row = {"epoch": self.epoch_offset + epoch, "train_loss": train_loss, **self.validate(cached=cached),
                   "time": time.perf_counter() - t0}
            self.recorder.add_row(row)
            self.table.row(row)
            rows.append(row)
            if self.checkpoint_every_epoch:
                self._write_epoch_checkpoint(epoch, epochs, opt, sched)
            for hook in self.on_epoch_end:
                hook(self, row)
        self.epoch_offset += epochs
        return rows

    def _warn_leaks(self) -> None:
        """Once, before training: warn when validation images are byte-identical copies of training ones.

        Content hashes of size-mates only (`pixclass.data.hashes`), measured on 2 busy cores: elpv's
        2,624 files 70 ms (317 share a size), 24 tiny test images 0.3 ms; were every file one size,
        elpv would take 0.74 s (all 90 MB hashed).
        """
        if self._leaks_checked:
            return
        self._leaks_checked = True
        copies = shared_copies(self.data.train_paths, self.data.valid_paths)
        if copies:
            n = len(copies)
            warnings.warn(f"pixclass: {n} train/valid pair{'s' if n > 1 else ''} of identical files (leaks: validation "
                          "scores will look better than they are); list them with 'pixclass dupes'", stacklevel=3)

    def _stage_title(self, cached: bool, epochs: int, lrs: list[float]) -> str:
        where = "frozen body, cached features" if cached else ("frozen body" if self.model.is_frozen else "unfrozen")
        lr_text = f"{lrs[-1]:.2e}" if len(set(lrs)) == 1 else f"{lrs[0]:.1e}…{lrs[-1]:.1e}"
        return f"{epochs} epoch(s), {where}, lr {lr_text}"

    def _steps_per_epoch(self) -> int:
        # Features and image loaders both drop a lone last item (BatchNorm needs two).
        return n_feature_batches(len(self.data.train_paths), self.data.bs)

    def _train_epoch(self, epoch: int, opt, sched, scaler, cached: bool) -> float:
        self.model.train()
        if cached:
            x, y = self.features.get("train")
            g = torch.Generator().manual_seed(self.data.seed * 100_003 + self.epoch_offset + epoch)
            batches = feature_batches(x, y, self.data.bs, g)
            forward, amp, total = self.model.head.mlp, None, n_feature_batches(len(x), self.data.bs)
        else:
            loader = self._loader("train")
            loader.sampler.set_epoch(self.epoch_offset + epoch)
            batches = self.data.batches(loader)
            forward, amp, total = self.model, self.amp, len(loader)
            if self.model.is_frozen and not self.train_bn:
                self.model.body.eval()  # a frozen body without trainable BatchNorm runs as at inference
            elif self.bn_eval:
                # Body and head: the head's statistics were calibrated exactly on clean features
                # (dropout off); batch updates under dropout would skew its variances.
                for m in self.model.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
        ctx = StepContext(forward, self.loss_fn, opt, sched, self.device, amp, self.channels_last and not cached,
                          scaler)

        def on_batch(loss: float, lr: float) -> None:
            self.recorder.batch_losses.append(loss)
            self.recorder.lrs.append(lr)
            bar.update(task, loss=f"loss {loss:.4f}")

        with progress_bar(self.progress) as bar:
            task = bar.add_task(f"epoch {self.epoch_offset + epoch}", total=total, loss="")
            return train_steps(ctx, tracked(batches, bar, task), on_batch)

    def _loader(self, split: str, augment: bool | None = None):
        return self.data.loader(split, augment=augment, pin_memory=self.device.type == "cuda")

    def _feature_batches(self, split: str) -> tuple[Any, int]:
        loader = self.data.loader(split, shuffle=False, augment=False)
        return self.data.batches(loader), len(loader)

    # ----- evaluation --------------------------------------------------------------------------
    def get_preds(self, split: str = "valid", activation: bool = True, cached: bool | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Outputs for a split (probabilities when `activation`) and its targets (None for test)."""
        cached = self.uses_cache if cached is None else cached
        self.model.eval()
        if cached and split in ("train", "valid"):
            x, y = self.features.get(split)
            with torch.no_grad():
                out = self.model.head.mlp(x.to(self.device)).float().cpu()
        else:
            loader = self.data.loader(split, shuffle=False, augment=False)
            # fp32, as the exported model predicts: reported metrics are what users will get.
            out, y = gather_outputs(self.model, self.data.batches(loader), self.device, None, self.channels_last)
        return (self.activate(out) if activation else out), y

    def tta(self, split: str = "valid") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Test-time augmentation: probabilities averaged over each image and its mirror image
        (what `Predictor.predict(img, tta=True)` computes), and the targets; fp32."""
        self.model.eval()
        loader = self.data.loader(split, shuffle=False, augment=False)

        def both_views(x: torch.Tensor) -> torch.Tensor:
            return (self.activate(self.model(x).float()) + self.activate(self.model(x.flip(-1)).float())) / 2

        return gather_outputs(both_views, self.data.batches(loader), self.device, None, self.channels_last)

    def metrics_of(self, probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """The learner's metrics of already activated outputs (e.g. those of `tta()`)."""
        out = _inverse_activation(probs, activation_for(self.data.task))
        return {name: float(fn(out, y)) for name, fn in self.metrics.items()}

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs → probabilities (softmax / sigmoid) or values (regression)."""
        kind = activation_for(self.data.task)
        return out.softmax(1) if kind == "softmax" else out.sigmoid() if kind == "sigmoid" else out

    def validate(self, cached: bool | None = None) -> dict[str, float]:
        """Validation loss and metrics over the whole validation set."""
        if not self.data.valid_paths:
            return {"valid_loss": float("nan")}
        out, y = self.get_preds("valid", activation=False, cached=cached)
        row = {"valid_loss": float(self.loss_fn(out, y).item())}
        row.update({name: float(fn(out, y)) for name, fn in self.metrics.items()})
        return row

    # ----- learning-rate finder ----------------------------------------------------------------
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100,
                stop_div: bool = True) -> LRFind:
        """Train briefly with an exponentially growing LR and record the loss; weights are restored.

        Stops early once the smoothed loss exceeds 4× its minimum. Returns an `LRFind` with
        `lrs`, `losses`, `plot()` and `suggestion`.
        """
        self._warn_leaks()
        saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        cached = self.uses_cache
        opt = make_optimizer(self.model.param_groups(), [start_lr] * len(self.model.groups), self.wd)
        ctx = StepContext(self.model.head.mlp if cached else self.model, self.loss_fn, opt, None, self.device,
                          None if cached else self.amp, self.channels_last and not cached)
        was_training = self.model.training
        batches = self._endless_batches(cached)
        try:
            self.model.train()
            return lr_range_test(ctx, batches, exp_lrs(start_lr, end_lr, num_it), stop_div)
        finally:
            batches.close()  # ends its loader iterator, so loader workers do not linger
            self.model.load_state_dict(saved)
            self.model.train(was_training)
            if not cached:
                self.features.clear()

    def _endless_batches(self, cached: bool):
        epoch = 0
        while True:
            if cached:
                x, y = self.features.get("train")
                g = torch.Generator().manual_seed(self.data.seed + 7919 * epoch)
                yield from feature_batches(x, y, self.data.bs, g)
            else:
                loader = self._loader("train")
                loader.sampler.set_epoch(10_000 + epoch)
                yield from self.data.batches(loader)
            epoch += 1

    # ----- saving ------------------------------------------------------------------------------
    def save(self, name: str) -> Path:
        """Save the weights as `path/checkpoints/<name>.safetensors` (a stage to come back to)."""
        target = self.path / "checkpoints" / f"{name}.safetensors"
        ckpt.save_weights(self.model, target, {"arch": self.arch, "frozen_groups": self.model.frozen_groups})
        return target

    def load(self, name: str | Path) -> Learner:
        """Load weights saved with `save(name)` (or from a .safetensors path)."""
        p = Path(name)
        target = p if p.suffix == ".safetensors" else self.path / "checkpoints" / f"{name}.safetensors"
        ckpt.load_weights(self.model, target, self.device)
        self.features.clear()
        return self

    def training_state(self, opt: torch.optim.Optimizer, sched: Any | None) -> dict[str, Any]:
        """What continuing a cycle needs besides the weights: optimizer, scheduler, RNG states and
        the batch history, as tensors and numbers only (a checkpoint reads back with `weights_only`)."""
        return {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else {},
            "rng": ckpt.rng_state(),
            "batch_losses": torch.tensor(self.recorder.batch_losses, dtype=torch.float64),
            "lrs": torch.tensor(self.recorder.lrs, dtype=torch.float64),
        }

    def restore(self, pointer: dict[str, Any]) -> dict[str, Any]:
        """Load an epoch checkpoint's weights, freezing, history and stage start from the run's
        `checkpoints/` (`pointer`: from `pixclass.train.resume.read_last_checkpoint`); returns the
        training state to continue with: `fit_one_cycle(epochs, lr, ..., resume=state)`."""
        weights, state_file = checkpoint_files(self.path / "checkpoints", pointer)
        self.model.freeze_to(int(pointer["frozen_groups"]), self.train_bn)
        ckpt.load_weights(self.model, weights, self.device)
        self.features.clear()
        state = ckpt.load_state(state_file)
        self.recorder.rows = list(pointer.get("rows", []))
        self.recorder.batch_losses = state["batch_losses"].tolist()
        self.recorder.lrs = state["lrs"].tolist()
        self.epoch_offset = int(pointer["stage_start"])
        state["epoch"] = int(pointer["epoch"])
        return state

    def _write_epoch_checkpoint(self, epoch: int, epochs: int, opt, sched) -> None:
        """Everything needed to continue after `epoch` (0-based) of a cycle of `epochs`."""
        progress = {"stage_start": self.epoch_offset, "epoch": epoch, "epochs": epochs,
                    "frozen_groups": self.model.frozen_groups, "rows": self.recorder.rows}
        write_epoch_checkpoint(self.path / "checkpoints", self.epoch_offset + epoch, self.model.state_dict(),
                               {"arch": self.arch}, self.training_state(opt, sched), progress)

    def export(self, path: str | Path | None = None, thresholds: Sequence[float] | None = None) -> Path:
        """Write the model and everything needed to predict into one safe `.pixclass` file.

        `thresholds`: a multi-label model's per-tag thresholds, e.g. `self.interpret().tune_thresholds()`;
        the file carries them and its predictions use them."""
        # lazy: export sits above train, never imported by it (tests/test_import_graph.py allows this one)
        from pixclass.export.bundle import export_learner

        return export_learner(self, Path(path) if path else self.path / "model.pixclass", thresholds)

    def interpret(self, split: str = "valid"):
        """`Interpretation.from_learner(self, split)`: confusion matrix, top losses, per-class scores."""
        # lazy: interpret sits above train, never imported by it (tests/test_import_graph.py allows this one)
        from pixclass.interpret import Interpretation

        return Interpretation.from_learner(self, split)

    def __repr__(self) -> str:
        state = "frozen" if self.model.is_frozen else f"frozen to group {self.model.frozen_groups}"
        return f"Learner({self.arch}, {self.data!r}, {state}, device={self.device.type})"


def _inverse_activation(probs: torch.Tensor, kind: str) -> torch.Tensor:
    """Outputs whose activation gives `probs`, for metrics that take raw outputs: log-probabilities
    for softmax (the same softmax and argmax), logits for sigmoid, values unchanged."""
    if kind == "softmax":
        return probs.clamp_min(1e-12).log()
    if kind == "sigmoid":
        p = probs.clamp(1e-7, 1 - 1e-7)
        return (p / (1 - p)).log()
    return probs
