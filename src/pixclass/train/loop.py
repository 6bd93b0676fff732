"""The inner loops: one training step, an epoch of them, the LR range test, and an evaluation pass.

Owns the per-batch work: moving tensors to the device, autocast, backward, optimizer and
scheduler steps (`train_step`, which `train_steps` and `lr_range_test` share), and gathering
outputs for whole-set metrics. The Learner decides what runs, on images or on cached features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from pixclass import interrupt
from pixclass.train.device import autocast
from pixclass.train.schedule import LRFind


@dataclass
class StepContext:
    """Everything a training step needs besides the batch."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    loss_fn: Callable
    opt: torch.optim.Optimizer
    sched: object | None
    device: torch.device
    amp: torch.dtype | None
    channels_last: bool
    scaler: object | None = None


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    if x.ndim == 4 and channels_last:
        return x.to(device, memory_format=torch.channels_last, non_blocking=True)
    return x.to(device, non_blocking=True)


def train_step(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> float:
    """One optimizer step on the batch `(x, y)`, the scheduler stepped after it; returns its loss."""
    x, y = to_device(x, ctx.device, ctx.channels_last), y.to(ctx.device, non_blocking=True)
    with autocast(ctx.device, ctx.amp):
        out = ctx.forward(x)
    loss = ctx.loss_fn(out.float(), y)
    ctx.opt.zero_grad(set_to_none=True)
    if ctx.scaler is not None:
        ctx.scaler.scale(loss).backward()
        ctx.scaler.step(ctx.opt)
        ctx.scaler.update()
    else:
        loss.backward()
        ctx.opt.step()
    if ctx.sched is not None:
        ctx.sched.step()
    return loss.item()


def train_steps(ctx: StepContext, batches: Iterable, on_batch: Callable[[float, float], None]) -> float:
    """Train over `batches`; returns the mean loss. `on_batch(loss, lr)` after every step, with
    the head group's LR that step used."""
    total, count = 0.0, 0
    for x, y in batches:
        interrupt.check()  # Ctrl-C stops training here, between two steps (see pixclass.interrupt)
        if len(x) < 2:
            continue  # BatchNorm cannot train on one item (a batch shrunk by skipped unreadable files)
        lr = ctx.opt.param_groups[-1]["lr"]  # the LR this batch trains with, before the scheduler moves it
        value = train_step(ctx, x, y)
        total += value * len(x)
        count += len(x)
        on_batch(value, lr)
    return total / max(1, count)


def lr_range_test(ctx: StepContext, batches: Iterator, lrs: Sequence[float], stop_div: bool = True) -> LRFind:
    """One step per LR in `lrs` (set on every param group, no scheduler), each on the next batch
    of 2+ items; records the loss smoothed as fastai does (EMA 0.98, debiased). Stops at a
    non-finite loss and, with `stop_div`, once the smoothed loss exceeds 4x its minimum."""
    result, avg, best = LRFind(), 0.0, math.inf
    for i, lr in enumerate(lrs):
        interrupt.check()
        for g in ctx.opt.param_groups:
            g["lr"] = lr
        x, y = next(b for b in batches if len(b[0]) > 1)  # a step needs 2+ items (BatchNorm)
        loss = train_step(ctx, x, y)
        if not math.isfinite(loss):
            break
        avg = 0.98 * avg + 0.02 * loss
        smooth = avg / (1 - 0.98 ** (i + 1))
        result.lrs.append(lr)
        result.losses.append(smooth)
        best = min(best, smooth)
        if stop_div and i > 5 and smooth > 4 * best:
            break
    return result


@torch.no_grad()
def gather_outputs(forward: Callable, batches: Iterable, device: torch.device, amp: torch.dtype | None,
                   channels_last: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Outputs (fp32, on CPU) for every batch, and the targets when the batches have them."""
    outs, ys = [], []
    for x, y in batches:
        interrupt.check()
        with autocast(device, amp):
            out = forward(to_device(x, device, channels_last))
        outs.append(out.float().cpu())
        if y is not None:
            ys.append(y)
    if not outs:
        return torch.empty(0), None
    return torch.cat(outs), (torch.cat(ys) if ys else None)


def feature_batches(x: torch.Tensor, y: torch.Tensor, bs: int, generator: torch.Generator | None) -> Iterator:
    """Mini-batches of cached features; shuffled when a generator is given. A lone last item
    is dropped (BatchNorm cannot train on a batch of one)."""
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, bs):
        idx = order[i:i + bs]
        if len(idx) < 2 and generator is not None:
            break
        yield x[idx], y[idx]


def n_feature_batches(n: int, bs: int) -> int:
    full, rest = divmod(n, bs)
    return full + (1 if rest >= 2 else 0)


def progress_bar(enabled: bool) -> Progress:
    """A transient per-epoch bar (shown only on a terminal)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[loss]}"), transient=True, disable=not (enabled and _console().is_terminal),
    )


def _console():
    from rich.console import Console

    return Console()


def tracked(batches: Iterable, progress: Progress, task_id) -> Iterator:
    for b in batches:
        yield b
        progress.advance(task_id)
