"""The inner loops: one training epoch and one evaluation pass, on images or on cached features.

Owns the per-batch work: moving tensors to the device, autocast, backward, optimizer and
scheduler steps, and gathering outputs for whole-set metrics. The Learner decides what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pixclass import interrupt
from pixclass.train.device import autocast


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


def train_steps(ctx: StepContext, batches: Iterable, on_batch: Callable[[float, float], None]) -> float:
    """Train over `batches`; returns the mean loss. `on_batch(loss, lr)` after every step, with
    the head group's LR that step used."""
    total, count = 0.0, 0
    for x, y in batches:
        interrupt.check()  # Ctrl-C stops training here, between two steps (see pixclass.interrupt)
        if len(x) < 2:
            continue  # BatchNorm cannot train on one item (a batch shrunk by skipped unreadable files)
        x, y = to_device(x, ctx.device, ctx.channels_last), y.to(ctx.device, non_blocking=True)
        with autocast(ctx.device, ctx.amp):
            out = ctx.forward(x)
        loss = ctx.loss_fn(out.float(), y)
        lr = ctx.opt.param_groups[-1]["lr"]  # the LR this batch trains with, before the scheduler moves it
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
        value = loss.item()
        total += value * len(x)
        count += len(x)
        on_batch(value, lr)
    return total / max(1, count)


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
