"""The torch side of the data layer: a Dataset of image files, batching, and epoch-seeded shuffling.

Owns: reading an item (through `open_image`) and transforming it, turning unreadable files into
`BadItem` markers instead of worker tracebacks, and collating samples into tensors.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from pixclass.data.images import open_image
from pixclass.errors import ImageReadError


@dataclass(frozen=True)
class BadItem:
    """An item that could not be read; carried to the main process so the error is one clear line."""

    path: str
    reason: str


class ImageDataset(Dataset):
    """Image files with encoded targets (int, multi-hot list, float or None for unlabelled)."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[Any], transform: Callable, size: int):
        self.paths = list(paths)
        self.targets = list(targets)
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any] | BadItem:
        try:
            img = open_image(self.paths[i], min_size=self.size)
        except ImageReadError as err:
            return BadItem(err.path, err.reason)
        return self.transform(img), self.targets[i]


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor | None, list[BadItem]]:
    """Stack good samples; bad ones are returned separately for the caller to report or skip."""
    bad = [b for b in batch if isinstance(b, BadItem)]
    good = [b for b in batch if not isinstance(b, BadItem)]
    if not good:
        return torch.empty(0), None, bad
    x = torch.stack([g[0] for g in good])
    ys = [g[1] for g in good]
    if ys[0] is None:
        return x, None, bad
    if isinstance(ys[0], float):
        y = torch.tensor(ys, dtype=torch.float32).unsqueeze(1)  # (B, 1) like the model output
    elif isinstance(ys[0], list):
        y = torch.tensor(ys, dtype=torch.float32)  # (B, C) multi-hot
    else:
        y = torch.tensor(ys, dtype=torch.long)  # (B,)
    return x, y, bad


class EpochSampler(Sampler[int]):
    """Shuffles with a seed derived from (seed, epoch): an epoch's order is the same after a resume."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def default_workers() -> int:
    """Loader processes: one per core beyond the training thread, at most 8; 0 on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 1 else min(cores, 8)


def ignore_interrupts(_worker_id: int) -> None:
    """A loader worker's start: Ctrl-C (sent to the whole process group) is the main process's
    to handle; it stops at a batch boundary and shuts its workers down. A worker ended by it
    instead would stall the main process until torch noticed the loss (about 5 s)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
