"""`pixclass verify` and `verify --fix` stopped at seeded moments, then run again to the end.

Each run gets a fresh copy of one prepared folder (2,000 small images: good ones, bad ones
— empty, HTML, truncated — and fixable ones — RGBA, EXIF-rotated, 16-bit, palette with
transparency) and is stopped with SIGKILL (the main process only: its workers must notice by
themselves) or SIGINT (the whole process group, as Ctrl-C does) at 20 moments each, spread
over the duration of a clean run measured first. After the rerun the folder must be exactly
what one uninterrupted run makes of it: no file lost, none duplicated, none hidden, every
quarantined file logged once; and no worker process may outlive its parent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faults.killer import kill_points, run_and_signal, run_pixclass, wait_gone
from imagefiles import jpeg_bytes, noise_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

FILES = 2000
POINTS = 20  # per command and signal
COMMANDS = {"verify": [], "fix": ["--fix"]}
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
LOGS = ("verify.csv", ".quarantine/quarantine.csv")


def encode(im: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def image_bytes(i: int) -> tuple[str, bytes]:
    """File number `i` of the corpus (name suffix, bytes): 15 % bad, 20 % fixable, 65 % good."""
    colour = (40 + i % 180, 200 - i % 150, 90)
    kind = i % 20
    if kind == 0:
        return ".jpg", b""
    if kind == 1:
        return ".jpg", f"<!DOCTYPE html><html><body>404 number {i}</body></html>".encode()
    if kind == 2:
        return ".jpg", jpeg_bytes(colour, size=48, seed=i)[:400]
    if kind == 3:
        rgba = noise_image(colour, i, 24).convert("RGBA")
        rgba.putalpha(128)
        return ".png", encode(rgba, "PNG")
    if kind == 4:
        exif = Image.Exif()
        exif[0x0112] = 6
        return ".jpg", encode(noise_image(colour, i, 24), "JPEG", exif=exif.tobytes())
    if kind == 5:
        deep = Image.fromarray((np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 97 + i).astype(np.uint16))
        return ".png", encode(deep, "PNG")
    if kind == 6:
        return ".png", encode(noise_image(colour, i, 24).quantize(16), "PNG", transparency=0)
    fmt = "JPEG" if i % 2 else "PNG"
    return f".{fmt.lower().replace('jpeg', 'jpg')}", encode(noise_image(colour, i, 24), fmt)


def tree(root: Path) -> dict[str, str]:
    """Every file under `root`, hidden ones included, with its sha256 (the two logs left out)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if rel not in LOGS:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def copy_of(prepared: Path, dest: Path) -> Path:
    """A fresh copy of the prepared folder. Hard links: verify never writes into an existing file
    (it renames, and writes fixed images to new files), so the prepared bytes stay as they are."""
    shutil.copytree(prepared, dest, copy_function=os.link)
    return dest


@dataclass
class Command:
    args: list[str]
    expected: dict[str, str]  # the tree after one uninterrupted run
    duration: float  # of that run, in seconds


@pytest.fixture(autouse=True)
def python_ctrl_c():
    """The runs get Python's own Ctrl-C handling even if an earlier in-process command left SIGINT
    ignored in this process (an ignored signal stays ignored in the processes it starts)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prepared") / "data"
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
    for i in range(FILES):
        suffix, data = image_bytes(i)
        (root / f"class_{i % 3}" / f"img_{i:05}{suffix}").write_bytes(data)
    return root


@pytest.fixture(scope="module")
def commands(prepared, tmp_path_factory) -> dict[str, Command]:
    """Each command run once to the end: what it makes of the folder, and how long it takes."""
    out = {}
    for name, extra in COMMANDS.items():
        root = copy_of(prepared, tmp_path_factory.mktemp(f"clean-{name}") / "data")
        args = ["verify", str(root), *extra, "--workers", "2", "--no-progress"]
        start = time.monotonic()
        assert run_pixclass(*args).returncode == 0
        out[name] = Command(extra, tree(root), time.monotonic() - start)
    return out


@pytest.fixture(scope="module")
def startup(tmp_path_factory) -> float:
    """Seconds a verify of an empty folder takes: Python's start-up and imports, then its exit.

    A Ctrl-C while Python still imports the command line ends it by SIGINT with a traceback
    (Python's, before pixclass runs), so the Ctrl-C moments start after this.
    """
    empty = tmp_path_factory.mktemp("empty")
    start = time.monotonic()
    assert run_pixclass("verify", str(empty), "--no-progress").returncode == 0
    return time.monotonic() - start


def test_the_clean_runs_quarantine_the_bad_files_and_fix_the_fixable_ones(prepared, commands):
    before = tree(prepared)
    verify, fix = commands["verify"].expected, commands["fix"].expected
    bad = {rel for rel in before if int(rel[-9:-4]) % 20 < 3}
    fixable = {rel for rel in before if 3 <= int(rel[-9:-4]) % 20 < 7}
    assert {rel for rel in verify if rel.startswith(".quarantine/")} == {f".quarantine/{rel}" for rel in bad}
    assert {rel for rel in fix if rel.startswith(".quarantine/")} == {f".quarantine/{rel}" for rel in bad | fixable}
    assert all(fix[rel] != before[rel] and fix[f".quarantine/{rel}"] == before[rel] for rel in fixable)


@pytest.mark.parametrize("point", range(POINTS))
@pytest.mark.parametrize("sig_name", SIGNALS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_stopped_verify_loses_nothing_once_run_again(prepared, commands, startup, tmp_path, command, sig_name,
                                                       point):
    cmd, sig = commands[command], SIGNALS[sig_name]
    lo = startup if sig == signal.SIGINT else 0.0
    seed = 1000 * list(COMMANDS).index(command) + 100 * list(SIGNALS).index(sig_name)
    delay = kill_points(seed, POINTS, lo, cmd.duration)[point]
    root = copy_of(prepared, tmp_path / "data")
    args = ["verify", str(root), *cmd.args, "--workers", "2", "--no-progress"]

    start = time.monotonic()
    out = run_and_signal(args, delay, sig, timeout=60)
    ended = time.monotonic() - start

    assert wait_gone(out.children, timeout=5) == [], "worker processes outlived the run"
    finished = out.stdout.rstrip().endswith(f"report: {root / 'verify.csv'}")  # the summary is the last line
    if not out.signalled:
        assert out.returncode == 0, out.stderr
    elif sig == signal.SIGKILL:
        # A SIGKILL that lands while the finished process is already exiting changes nothing.
        assert out.returncode == -signal.SIGKILL or (finished and out.returncode == 0), out.stderr
    elif finished:
        # Ctrl-C once the work was done and the summary printed: ignored on the way out (0),
        # caught (130), or in the interpreter's last milliseconds, when Python has given SIGINT
        # back to the system (-2, silent). Nothing was left half done in any case.
        assert out.returncode in (0, 130, -signal.SIGINT) and "Traceback" not in out.stderr, out.stderr
    else:
        assert out.returncode == 130, out.stderr
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("pixclass: ") and "interrupted" in lines[0], out.stderr
        # A bound for a hang, not a speed target (machines here are shared and noisy).
        assert ended - delay < 30.0, f"Ctrl-C took {ended - delay:.1f} s to end the run"

    again = run_pixclass(*args, timeout=60)
    assert again.returncode == 0, again.stderr
    assert_same_tree(tree(root), cmd.expected)
    assert_logs_parse_and_match(root)


def assert_same_tree(got: dict[str, str], expected: dict[str, str]) -> None:
    lost = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))  # duplicates, hidden temp or fixed files
    changed = sorted(rel for rel in set(got) & set(expected) if got[rel] != expected[rel])
    assert (lost, extra, changed) == ([], [], []), f"lost {lost[:5]}, extra {extra[:5]}, changed {changed[:5]}"
    contents_before, contents_after = sorted(expected.values()), sorted(got.values())
    assert contents_after == contents_before


def assert_logs_parse_and_match(root: Path) -> None:
    with (root / ".quarantine/quarantine.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "moved_to", "problem", "detail"] and all(len(r) == 4 for r in rows)
    moved = [r[1] for r in rows[1:]]
    in_quarantine = [rel for rel in tree(root) if rel.startswith(".quarantine/")]
    assert sorted(moved) == sorted(in_quarantine) and len(set(moved)) == len(moved)
    with (root / "verify.csv").open(newline="", encoding="utf-8") as fh:
        report = list(csv.reader(fh))
    assert report[0] == ["file", "problem", "action", "detail"] and all(len(r) == 4 for r in report)
