"""Worker processes for verify, and Ctrl-C around them.

`map_in_workers` runs a check over many files in a process pool when that pays. The workers
ignore Ctrl-C (the main process stops the pool) and exit by themselves if the main process is
killed (PR_SET_PDEATHSIG, or a pidfd / getppid watch). In the main process,
`finish_before_interrupt` holds a Ctrl-C until the step in progress (a move) is done.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

_R = TypeVar("_R")


def map_in_workers(check: Callable[[str], _R], files: list[str], workers: int | None,
                   lock_fd: int | None) -> Iterator[_R]:
    """`check` over `files`, in worker processes when it pays; closing it stops the workers promptly.

    `check` must pickle (a module-level function, or a `partial` of one). `lock_fd`, a descriptor
    only the main process may hold (the folder's lock), is closed in the workers that inherit it.
    """
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < 8:  # a pool costs more than it saves here
        yield from map(check, files)
        return
    context = multiprocessing.get_context()
    fork = context.get_start_method() == "fork"  # only a forked worker holds a copy of the lock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(), lock_fd if fork else None))
    try:
        with _ctrl_c_blocked():  # the workers start deaf to Ctrl-C, then ignore it for good
            results = pool.map(check, files, chunksize=max(1, min(16, len(files) // (workers * 8))))
        yield from results
    finally:
        # On Ctrl-C or an error: drop the files not started; the workers finish one chunk and exit.
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(main: int, inherited_fd: int | None) -> None:
    """Run in each worker: leave Ctrl-C to the main process `main`, and die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the pool; no tracebacks here
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if inherited_fd is not None:  # the folder's lock is the main process's alone
        try:
            os.close(inherited_fd)
        except OSError:
            pass
    if os.getppid() == main and _parent_death_signal(signal.SIGKILL):
        if os.getppid() != main:  # it died before the kernel was asked
            os._exit(1)
        return
    threading.Thread(target=_exit_when_gone, args=(main,), daemon=True, name="watch-main").start()


def _parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send `sig` to this process when its parent dies (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _exit_when_gone(main: int) -> None:
    """The fallback, in a daemon thread: exit once process `main` has ended (also when it is not
    our parent, as under a fork server): wait on a pidfd, or poll the parent's pid."""
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(main)
        except ProcessLookupError:
            os._exit(1)
        except OSError:
            fd = None
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has ended
            os._exit(1)
    ppid = os.getppid()
    while os.getppid() == ppid:
        time.sleep(0.25)
    os._exit(1)


@contextmanager
def _ctrl_c_blocked() -> Iterator[None]:
    """Block SIGINT in this thread (children forked inside inherit the mask); a pending one arrives after."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def finish_before_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block until the block is done, then deliver it."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield  # only the main thread gets signals; None: a handler Python cannot put back
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda sig, frame: caught.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)

