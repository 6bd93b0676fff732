"""Fault injection into `pixclass train` and `train --resume`: SIGKILL and Ctrl-C at seeded moments.

One uninterrupted run is the reference. Then a chain of runs into another folder is signalled
again and again, each next run being `train --resume` (or `train` again while no config was
written), until at least 20 runs were signalled; then the last one runs to the end. A chain that
finishes before the next signal is checked and begun again with `--overwrite`. Every finished
chain must equal the reference exactly: the same history epochs and the same model tensors.
After each signal: Ctrl-C exits 130 with one line saying how to go on, no traceback; the
checkpoint pointer never goes back (a kill costs at most the epoch in progress); no stray
temporary files; no orphaned loader processes.
"""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from faults.killer import kill_points, run_and_signal, run_pixclass, wait_gone
from imagefiles import write_class_folders

pytestmark = pytest.mark.slow

ARGS = ["--arch", "test_efficientnet", "--no-pretrained", "--size", "32", "--bs", "8", "--workers", "1",
        "--epochs", "3", "--unfreeze-epochs", "5", "--seed", "7",
        "--no-report"]  # signals land in training here; tests/interpret/test_report.py stops a report
SIGNALS_PER_KIND = 20
EPOCHS = 3 + 5
STARTUP = 1.5  # seconds before `main` runs: Ctrl-C there is Python's, not ours


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("train_faults") / "data", n_per_class=16)


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory) -> tuple[Path, float]:
    run = tmp_path_factory.mktemp("reference") / "run"
    t0 = time.monotonic()
    res = run_pixclass("train", str(data), *ARGS, "--out", str(run))
    assert res.returncode == 0, res.stderr
    return run, time.monotonic() - t0


def _epochs(run: Path) -> list[int]:
    with (run / "history.csv").open(newline="") as fh:
        return [int(row["epoch"]) for row in csv.DictReader(fh)]


def _progress(run: Path) -> int:
    """Epochs completed according to the checkpoint pointer (-1 before the first)."""
    try:
        pointer = json.loads((run / "checkpoints" / "last.json").read_text())
    except FileNotFoundError:
        return -1
    return int(pointer["stage_start"]) + int(pointer["epoch"])


def _assert_equals_reference(run: Path, reference: Path, story: list[str]) -> None:
    assert _epochs(run) == _epochs(reference), story
    got, want = load_file(run / "model.pixclass"), load_file(reference / "model.pixclass")
    assert sorted(got) == sorted(want)
    assert [k for k in want if not bool((got[k] == want[k]).all())] == [], story


def _no_stray_files(run: Path) -> None:
    stray = [p for p in run.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert stray == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_signalled_training_resumes_to_exactly_the_uninterrupted_run(sig, data, reference, tmp_path):
    ref_run, ref_seconds = reference
    run = tmp_path / "run"
    # Seeded moments as shares of what is left of the run, one in each slice of (0, 1): early ones
    # hit lr_find and caching, late ones the last epochs. A resumed run has fewer epochs to go,
    # so its share is of a shorter expected time (otherwise most resumes would finish first).
    shares = kill_points(seed=int(sig), n=SIGNALS_PER_KIND, lo=0.0, hi=1.0)

    def moment(k: int) -> float:
        left = (EPOCHS - 1 - max(-1, _progress(run))) / EPOCHS if "--resume" in args else 1.0
        return STARTUP + shares[k] * max(0.5, (ref_seconds - STARTUP) * left)

    signalled, chains = 0, 0
    story: list[str] = []  # what each run did, for the failure message
    fresh = ["train", str(data), *ARGS, "--out", str(run)]
    args = fresh
    while signalled < SIGNALS_PER_KIND:
        before = -1 if "--overwrite" in args else _progress(run)
        at = moment(signalled)
        out = run_and_signal(args, at, sig, timeout=180)
        story.append(f"{args[1]} signal at {at:.2f} s: exit {out.returncode}, "
                     f"progress {before} -> {_progress(run)}, {(out.stderr.strip().splitlines() or [''])[-1]}")
        if not out.signalled or out.returncode == 0:  # the chain finished first (or while it exited)
            assert out.returncode == 0 and "model: " in out.stdout, out.stderr
            _assert_equals_reference(run, ref_run, story)
            chains += 1
            args = [*fresh, "--overwrite"]
            continue
        signalled += 1
        if sig == signal.SIGINT:
            assert "Traceback" not in out.stderr, out.stderr
            last = out.stderr.strip().splitlines()[-1]
            assert out.returncode == 130 and last.startswith("pixclass: training interrupted"), out.stderr
            assert wait_gone(out.children, timeout=5) == []
        else:  # (what orphaned loader workers print on their way out is not ours to tidy)
            assert out.returncode == -signal.SIGKILL
            # Loader workers notice their parent's death by themselves (torch polls every 5 s).
            assert wait_gone(out.children, timeout=15) == []
        assert _progress(run) >= before  # never back: at most the epoch in progress is lost
        args = ["train", "--resume", str(run)] if (run / "config.json").is_file() else fresh
    res = run_pixclass(*args)
    assert res.returncode == 0, res.stderr
    _assert_equals_reference(run, ref_run, story)
    _no_stray_files(run)
