"""A rich progress bar that also shows named counts (ok / failed / skipped ...), on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Update(Protocol):
    def __call__(self, advance: int = 1, **counts: int) -> None: ...


@contextmanager
def counting_progress(description: str, total: int, names: list[str], enabled: bool = True) -> Iterator[Update]:
    """Yield `update(advance=1, **counts)`; shows nothing when `enabled` is False.

    Args:
        description: text before the bar, e.g. "download".
        total: number of steps.
        names: the counts shown after the bar, in order.
        enabled: False for a silent run (tests, library use).
    """
    if not enabled:
        yield lambda advance=1, **counts: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts_text = "  ".join(f"{{task.fields[{n}]}} {n}" for n in names)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(counts_text), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=total, **{n: 0 for n in names})

        def update(advance: int = 1, **counts: int) -> None:
            bar.update(task, advance=advance, **counts)

        yield update
