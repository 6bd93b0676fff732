"""`pixclass.interrupt`: inside `deferred()` Ctrl-C stops at the next `check()`, never inside library code."""

from __future__ import annotations

import subprocess
import sys

PRELUDE = """
import os, signal, time
from pixclass import interrupt
def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
"""


def _run(body: str) -> str:
    res = subprocess.run([sys.executable, "-c", PRELUDE + body], capture_output=True, text=True, timeout=60)
    return res.stdout.strip()


def test_inside_deferred_a_ctrl_c_waits_for_the_next_check():
    body = """
try:
    with interrupt.deferred():
        ctrl_c()
        print("still running")
        interrupt.check()
        print("not reached")
except KeyboardInterrupt:
    print("interrupted at check")
"""
    assert _run(body).splitlines() == ["still running", "interrupted at check"]


def test_a_second_ctrl_c_inside_deferred_raises_at_once():
    body = """
try:
    with interrupt.deferred():
        ctrl_c()
        ctrl_c()
        print("not reached")
except KeyboardInterrupt:
    print("interrupted at once")
"""
    assert _run(body) == "interrupted at once"


def test_an_error_after_a_ctrl_c_is_reported_as_the_interrupt():
    body = """
try:
    with interrupt.deferred():
        ctrl_c()
        raise RuntimeError("DataLoader worker exited unexpectedly")
except KeyboardInterrupt:
    print("interrupt")
except RuntimeError:
    print("error")
"""
    assert _run(body) == "interrupt"


def test_outside_deferred_python_raises_where_it_is_and_check_does_nothing():
    body = """
try:
    ctrl_c()
    print("not reached")
except KeyboardInterrupt:
    interrupt.check()
    print("python's own interrupt")
"""
    assert _run(body) == "python's own interrupt"
