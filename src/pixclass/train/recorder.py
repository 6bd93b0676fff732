"""What happened during training: per-batch losses and LRs, per-epoch rows, their plots and CSV.

Owns: `Recorder` (history rows like fastai's table, batch losses, learning rates) and the
epoch table printed as training goes.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console


@dataclass
class Recorder:
    """History of a Learner: one row per epoch and the per-batch losses/LRs of every stage."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    batch_losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)

    def add_row(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """History as CSV text, also written (atomically) to `path` when given."""
        buf = io.StringIO()
        if self.rows:
            keys = list(dict.fromkeys(k for r in self.rows for k in r))
            w = csv.DictWriter(buf, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        text = buf.getvalue()
        if path is not None:
            from pixclass.files import atomic_write_text

            atomic_write_text(path, text)
        return text

    def plot_losses(self, path: str | os.PathLike | None = None):
        """Training loss per batch (smoothed) and validation loss per epoch."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        if self.batch_losses:
            ax.plot(range(1, len(self.batch_losses) + 1), _smooth(self.batch_losses), label="train (smoothed)")
        if self.rows and self.batch_losses:
            per_epoch = len(self.batch_losses) / len(self.rows)
            xs = [per_epoch * (i + 1) for i in range(len(self.rows))]
            ax.plot(xs, [r["valid_loss"] for r in self.rows], "o-", label="valid")
        ax.set_xlabel("batches")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        if path:
            fig.savefig(path, dpi=80)
        return fig

    def plot_lr(self, path: str | os.PathLike | None = None):
        """The learning rate of the head's group at every batch."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 3))
        ax = fig.add_subplot()
        ax.plot(range(1, len(self.lrs) + 1), self.lrs)
        ax.set_xlabel("batches")
        ax.set_ylabel("learning rate")
        fig.tight_layout()
        if path:
            fig.savefig(path, dpi=80)
        return fig


def _smooth(values: list[float], beta: float = 0.98) -> list[float]:
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


class EpochTable:
    """Prints fastai's table one row per epoch: epoch, train_loss, valid_loss, metrics, time."""

    def __init__(self, metric_names: list[str], console: Console | None = None, enabled: bool = True):
        self.cols = ["epoch", "train_loss", "valid_loss", *metric_names, "time"]
        self.console = console or Console(highlight=False)
        self.enabled = enabled
        self._header_done = False

    def header(self, title: str | None = None) -> None:
        if not self.enabled:
            return
        if title:
            self.console.print(f"[bold]{title}[/bold]")
        self.console.print("  ".join(f"{c:>12}" if i else f"{c:<6}" for i, c in enumerate(self.cols)))

    def row(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        cells = []
        for i, c in enumerate(self.cols):
            v = row.get(c, "")
            if c == "time":
                cells.append(f"{_clock(v):>12}")
            elif i == 0:
                cells.append(f"{v:<6}")
            else:
                cells.append(f"{v:>12.6f}" if isinstance(v, float) else f"{v!s:>12}")
        self.console.print("  ".join(cells))


def _clock(seconds: Any) -> str:
    s = int(round(float(seconds or 0)))
    return f"{s // 60:02d}:{s % 60:02d}"
