"""Ctrl-C during training stops at the next batch boundary, never inside library code.

Python raises KeyboardInterrupt wherever the main thread happens to be, and some places swallow
it: a fork hook (torch forks a loader worker every epoch), a loader's `__del__`, a weakref
callback. There Python prints "Exception ignored" with a traceback and carries on: a Ctrl-C
while a worker started let a training run to its end and exit 0. Inside `deferred()` (the
`pixclass train` command uses it) the first Ctrl-C only records the request, and the batch loops
call `check()`, which raises KeyboardInterrupt at that safe point; a second Ctrl-C raises at once
(for a loop that hangs). An error inside the block after a Ctrl-C (a loader worker that the same
Ctrl-C ended, as a terminal signals the whole process group) is reported as the interrupt.
Outside the block, and for library users, Python's own behaviour is unchanged.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = False


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt at the next `check()` (main thread only)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
        check()  # pressed after the last batch: still an interrupted command (exit 130)
    except Exception:
        if _requested:  # e.g. a loader worker the same Ctrl-C ended: the interrupt is the cause
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested:  # the second Ctrl-C: the user means now
        raise KeyboardInterrupt
    _requested = True


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed inside `deferred()`."""
    if _requested:
        raise KeyboardInterrupt
