"""`pixclass.interrupt`: a Ctrl-C swallowed by library code is raised again at the next batch."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, time
from pixclass import interrupt
{install}
try:  # library code that swallows the interrupt, as a fork hook or a __del__ does
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)
except KeyboardInterrupt:
    pass
try:
    interrupt.check()
    print("lost")
except KeyboardInterrupt:
    print("raised again")
"""


def _run(install: str) -> str:
    code = SCRIPT.format(install=install)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()


def test_a_swallowed_ctrl_c_is_raised_again_by_check_once_the_handler_is_installed():
    assert _run("interrupt.install()") == "raised again"


def test_without_the_handler_check_leaves_pythons_own_behaviour_alone():
    assert _run("") == "lost"
