"""Run `pixclass` in a child process and hit it with a signal at a chosen moment.

Shared by the fault-injection tests. A signal is sent the way it arrives in real life:
SIGINT to the whole process group, as a terminal's Ctrl-C does; SIGKILL to the main process
alone, as the OOM killer or `kill -9 PID` does (its workers are left to notice by themselves).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    """What one signalled run did."""

    returncode: int
    stdout: str
    stderr: str
    signalled: bool  # False when the run had already finished before the signal was due
    children: list[int] = field(default_factory=list)  # descendants alive when the signal was sent


def kill_points(seed: int, n: int, lo: float, hi: float) -> list[float]:
    """`n` seeded moments (seconds after start) spread over [lo, hi]: one in each of n equal slices."""
    rng = random.Random(seed)
    step = (hi - lo) / n
    return [lo + step * (i + rng.random()) for i in range(n)]


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux: /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def alive(pids: list[int]) -> list[int]:
    """The pids among `pids` that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait up to `timeout` s for `pids` to exit; returns the ones still running (orphans)."""
    deadline = time.monotonic() + timeout
    left = alive(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = alive(left)
    return left


def run_pixclass(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m pixclass ARGS` to the end."""
    return subprocess.run([sys.executable, "-m", "pixclass", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def run_and_signal(args: list[str], delay: float, sig: int, *, cwd: Path | None = None,
                   env: dict[str, str] | None = None, timeout: float = 300) -> Outcome:
    """Start `python -m pixclass ARGS`, send `sig` after `delay` seconds, wait for it to end."""
    proc = _start(args, cwd, env)
    try:
        proc.wait(timeout=delay)
        return _finish(proc, args, sig, timeout, signalled=False, children=[])
    except subprocess.TimeoutExpired:
        children = descendants(proc.pid)
        return _finish(proc, args, sig, timeout, signalled=_send(proc, sig), children=children)


def run_and_signal_when(args: list[str], ready: Callable[[], bool], sig: int, *, cwd: Path | None = None,
                        env: dict[str, str] | None = None, wait_limit: float = 60, poll: float = 0.02,
                        timeout: float = 300) -> Outcome:
    """Like `run_and_signal`, but the signal goes as soon as `ready()` is true (polled every `poll` s).

    For a test that needs the run at a known stage (e.g. some rows written) rather than at a time.
    If the run ends first, or `ready()` stays false for `wait_limit` s, no signal is sent.
    """
    proc = _start(args, cwd, env)
    deadline = time.monotonic() + wait_limit
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(poll)
    if proc.poll() is None and ready():
        children = descendants(proc.pid)
        return _finish(proc, args, sig, timeout, signalled=_send(proc, sig), children=children)
    return _finish(proc, args, sig, timeout, signalled=False, children=[])


def _start(args: list[str], cwd: Path | None, env: dict[str, str] | None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pixclass", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _send(proc: subprocess.Popen, sig: int) -> bool:
    """SIGINT to the process group (a terminal's Ctrl-C), anything else to the process alone.

    False when the process had already ended: a zombie not yet reaped still accepts a signal.
    """
    if not alive([proc.pid]):
        return False
    try:
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
    except ProcessLookupError:  # it ended just before
        return False
    return True


def _finish(proc: subprocess.Popen, args: list[str], sig: int, timeout: float, *, signalled: bool,
            children: list[int]) -> Outcome:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"pixclass {' '.join(args)} did not end {timeout} s after signal {sig}: {err[-2000:]}")
    return Outcome(proc.returncode, out, err, signalled, children)


# Run in the child by `run_killed_at`: an audit hook that SIGKILLs the process at one event.
_KILL_AT_EVENT = """
import fnmatch, os, signal, sys
event, pattern = sys.argv[1], sys.argv[2]

def hook(name, args):
    if name == event and args and fnmatch.fnmatch(os.path.basename(os.fsdecode(args[0])), pattern):
        os.kill(os.getpid(), signal.SIGKILL)

sys.argv = ["pixclass", *sys.argv[3:]]
sys.addaudithook(hook)
from pixclass.cli import main
main()
"""


def run_killed_at(args: list[str], event: str, name: str, *, cwd: Path | None = None,
                  env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `pixclass ARGS` and SIGKILL it at the first audit `event` whose path matches `name`.

    `event` is a `sys.audit` event whose first argument is a path, e.g. "open", "os.link",
    "os.rename", "os.remove"; `name` is an fnmatch pattern for that path's last part. The hook
    runs before the operation, so the process dies just before it. A return code of -9 says it
    was killed; anything else, that the event never came.
    """
    return subprocess.run([sys.executable, "-c", _KILL_AT_EVENT, event, name, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)

