"""A run folder's identity and exclusivity: the run marker, the lock, and where a run may live.

Owns:
- the marker `RUN/.pixclass-run`, written when pixclass makes a folder a run, so a non-empty
  folder without it is the user's and is never written into unless they say `overwrite`;
- the lock `RUN/.pixclass-lock`: an advisory `flock` held for as long as a process trains or
  exports into the run, the holder's PID written inside so a second process can name it. The
  kernel drops the lock when its holder dies, even by SIGKILL, so a stale lock never blocks;
- the rule that a run folder never lies inside the image folder it trains on (its `plots/`
  would become a class on the next training).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import IO

from pixclass.errors import PixclassError
from pixclass.files import atomic_write_text

MARKER = ".pixclass-run"
LOCK = ".pixclass-lock"
# What a run writes: an `overwrite` removes these (and only these) before a fresh run.
# Files the verbs on a finished run write into it (the one source of their names).
REPORT = "report.html"  # pixclass train / interpret: the model card
INTERPRET_DIR = "interpret"  # pixclass interpret: its plots
LABEL_ISSUES = "label_issues.csv"  # pixclass label-issues
THRESHOLDS = "thresholds.json"  # pixclass interpret --tune-thresholds: per-tag thresholds every export ships
DUPES = "dupes.csv"  # where the report and the cleaner look for `pixclass dupes RUN --csv RUN/dupes.csv`
# What a run and the verbs on it write: an overwritten run drops them all, so nothing describes the
# old model. DUPES is not listed: `pixclass dupes --csv` writes where the user tells it.
RUN_OUTPUTS = ("checkpoints", "plots", "config.json", "history.csv", "summary.json", "probe.json",
               "model.pixclass", "model.onnx", REPORT, INTERPRET_DIR, LABEL_ISSUES, THRESHOLDS, MARKER)


def is_run(folder: Path) -> bool:
    """True when `folder` was made a run folder by pixclass."""
    return (folder / MARKER).is_file()


def check_fresh(folder: Path, overwrite: bool = False) -> None:
    """Refuse a fresh run in `folder` that would write over anything not ours (reads only).

    A missing or empty folder, or a run that never finished an epoch, is fine. A run with
    checkpoints is refused (resume it, or `overwrite` to start again). A non-empty folder that
    is not a run is refused unless `overwrite`.
    """
    if folder.exists() and not folder.is_dir():
        raise PixclassError(f"--out '{folder}' is a file, not a folder: choose another --out")
    if overwrite or not folder.is_dir() or not any(p.name != LOCK for p in folder.iterdir()):
        return
    if not is_run(folder):
        raise PixclassError(
            f"--out '{folder}' is a non-empty folder that is not a pixclass run: choose another --out, "
            "or add --overwrite to write the run's files into it")
    if (folder / "checkpoints" / "last.json").exists():
        raise PixclassError(
            f"'{folder}' already holds a training run: continue it with 'pixclass train --resume {folder}', "
            "choose another --out, or add --overwrite to start it again")


def prepare(folder: Path, overwrite: bool = False) -> None:
    """Make `folder` the run folder of a fresh run (call it holding the run's lock).

    With `overwrite` on an earlier run, the files it wrote (`RUN_OUTPUTS`) are removed first;
    in a folder that is not a run nothing is removed (the run's files replace theirs by name).
    """
    check_fresh(folder, overwrite)
    if overwrite and is_run(folder):
        for name in RUN_OUTPUTS:
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    mark(folder)


def mark(folder: Path) -> None:
    """Write the run marker (what made the folder a run, and when)."""
    import pixclass

    atomic_write_text(folder / MARKER, json.dumps({"pixclass_version": pixclass.__version__,
                                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


def require_run(folder: Path, what: str) -> None:
    """Refuse to `what` (e.g. "resume") a folder that is not a training run."""
    if not folder.is_dir():
        raise PixclassError(f"cannot {what} '{folder}': no such folder")
    if not (folder / "config.json").is_file():
        raise PixclassError(f"cannot {what} '{folder}': it is not a training run (no config.json)")


def check_outside_data(folder: Path, data_root: Path) -> None:
    """Refuse a run folder equal to or inside the image folder it trains on."""
    out, data = _absolute(folder), _absolute(data_root)
    if out == data or data in out.parents:
        raise PixclassError(
            f"--out '{folder}' is inside the data folder '{data_root}': the next training would read the "
            "run's files as images or a class. Choose an --out outside it (e.g. runs/NAME)")


def _absolute(path: Path) -> Path:
    return Path(os.path.realpath(path))


class RunLock:
    """Hold `RUN/.pixclass-lock` while working in a run; a second holder is refused by name.

    Use as a context manager. Without `fcntl` (Windows) there is no lock.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / LOCK
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise PixclassError(f"'{self.folder}' is in use by another pixclass process ({_describe(holder)}): "
                                "wait for it to finish or stop it, or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(_holder())
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:  # closing drops the flock; the file stays (deleting it would race)
            self._fh.close()
            self._fh = None


def _holder() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S")})


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"PID {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
