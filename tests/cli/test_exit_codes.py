"""Exit codes and messages of the `pixclass` command: usage errors, Ctrl-C, user errors."""

from __future__ import annotations

import signal
from pathlib import Path

from .conftest import TINY, run_cli


def test_an_unknown_command_prints_the_usage_line_and_exits_2_without_a_traceback():
    res = run_cli("nosuch")
    assert res.returncode == 2
    assert "Usage: " in res.stderr and "pixclass [OPTIONS]" in res.stderr and "No such command 'nosuch'" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_an_unknown_option_prints_the_commands_usage_and_exits_2_without_a_traceback():
    res = run_cli("export", "RUN", "--tflite")
    assert res.returncode == 2
    assert "pixclass export [OPTIONS]" in res.stderr and "No such option: --tflite" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_a_bad_option_value_exits_2_naming_the_option():
    res = run_cli("train", "data", "--epochs", "many")
    assert res.returncode == 2
    assert "--epochs" in res.stderr and "Traceback" not in res.stderr


def test_a_user_error_is_one_line_on_stderr_and_exits_1(tmp_path: Path):
    res = run_cli("train", str(tmp_path / "missing"))
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("pixclass: ")


def test_ctrl_c_during_training_exits_130_with_one_line_saying_how_to_resume(class_folders: Path, tmp_path: Path):
    from faults.killer import run_and_signal_when

    run = tmp_path / "run"
    # Many epochs: the run is still training when the signal comes, once an epoch is saved (a
    # fixed delay was too short on a loaded machine: Ctrl-C came before the first epoch ended).
    args = ["train", str(class_folders), *TINY, "--epochs", "400", "--unfreeze-epochs", "0", "--out", str(run)]
    out = run_and_signal_when(args, lambda: (run / "checkpoints" / "last.json").is_file(), signal.SIGINT,
                              wait_limit=120, timeout=60)
    assert out.signalled and out.returncode == 130, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("pixclass: ") and f"pixclass train --resume {run}" in last
    assert "Traceback" not in out.stderr


def test_a_ctrl_c_that_lands_in_a_finaliser_prints_nothing_and_other_unraisables_still_reach_the_hook():
    from types import SimpleNamespace

    from pixclass.cli import _quiet_interrupts

    seen: list[type] = []
    hook = _quiet_interrupts(lambda unraisable: seen.append(type(unraisable.exc_value)))
    for exc in (KeyboardInterrupt(), ValueError("boom")):
        hook(SimpleNamespace(exc_type=type(exc), exc_value=exc, exc_traceback=None, err_msg=None, object=None))
    assert seen == [ValueError]
