"""keep_freed_memory: freed memory stays with the process for reuse (glibc only)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc's mallopt only")

# Prints how much of a freed 64 MB block the process still holds (MB).
SCRIPT = """
import os, sys
from pixclass.malloc import keep_freed_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
before = rss()
block = b"x" * (64 << 20)  # written, so every page is really there
del block
print(applied, (rss() - before) >> 20)
"""


def held_after_free(mode: str, **env: str) -> tuple[str, int]:
    import os

    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=60).stdout.split()
    return out[0], int(out[1])


def test_freed_memory_is_kept_for_reuse_once_tuned():
    applied, held = held_after_free("plain")
    assert applied == "False" and held < 8  # glibc unmaps a big freed block at once
    applied, held = held_after_free("tuned")
    assert applied == "True" and held >= 60


def test_the_user_can_opt_out():
    applied, held = held_after_free("tuned", PIXCLASS_MALLOC="default")
    assert applied == "False" and held < 8


def test_the_cli_tunes_its_own_process():
    code = ("import pixclass.malloc as m, pixclass.cli as c; "
            "calls = []; m.keep_freed_memory = lambda: calls.append(1)\n"
            "try: c.main(['--help'])\nexcept SystemExit: pass\nprint(len(calls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split()[-1] == "1"
