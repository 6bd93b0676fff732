"""Ctrl-C that cannot be lost: the flag behind the `pixclass` command's SIGINT handler.

Python raises KeyboardInterrupt wherever the main thread happens to be, and some places swallow
it: a fork hook (torch forks a loader worker every epoch), a `__del__`, a weakref callback. There
Python prints "Exception ignored" and carries on, and a Ctrl-C during a worker's start let a
training run to its end and exit 0. The command's handler therefore also records the request,
and loops over batches call `check()`, which raises it again at that safe point. Library users
who never call `install()` keep Python's own behaviour.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested = False


def install() -> None:
    """Handle SIGINT by recording the request and raising KeyboardInterrupt (main thread only)."""
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if the first one was swallowed."""
    if _requested:
        raise KeyboardInterrupt
