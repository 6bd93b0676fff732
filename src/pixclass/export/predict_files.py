"""Batch prediction over files and folders, printed and optionally written as CSV.

Owns: expanding paths (folders recursively), predicting them in batches, and the CSV with
columns `path,label,prob` (multi-label: predicted tags space-separated in `label`).
"""

from __future__ import annotations

import csv as csvlib
import io
import os
from pathlib import Path
from typing import Callable, Sequence

from pixclass.data.images import is_image_file
from pixclass.errors import PixclassError
from pixclass.export.predictor import Prediction, load_model
from pixclass.files import atomic_write_text


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the image files below them (hidden folders skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(Path(root) / f for f in sorted(files) if is_image_file(f))
        elif p.exists():
            out.append(p)
        else:
            raise PixclassError(f"'{p}' does not exist")
    return out


def printable(path: Path) -> str:
    """`path` for one line of output: control characters (a newline in a name) escaped as `\\n`."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(path))


def label_text(pred: Prediction) -> str:
    if isinstance(pred.label, list):
        return " ".join(pred.label)
    return f"{pred.label:.6g}" if isinstance(pred.label, float) else str(pred.label)


def predict_files(model_path: str, paths: Sequence[str], csv_path: str | None = None, bs: int | None = None,
                  echo: Callable[[str], None] = print) -> tuple[int, int]:
    """Predict every image under `paths`; returns (predicted, unreadable) counts."""
    model = load_model(model_path)
    files = expand_paths(paths)
    if not files:
        raise PixclassError(f"no image files found in {', '.join(paths)}")
    buf = io.StringIO()
    writer = csvlib.writer(buf)
    writer.writerow(["path", "label", "prob"])
    n_ok = n_bad = 0
    for path, pred, error in model.predict_many(files, bs=bs):
        if pred is None:
            n_bad += 1
            echo(f"{printable(path)}: unreadable ({error})")
            continue
        n_ok += 1
        prob = "" if pred.prob != pred.prob else f"{pred.prob:.4f}"
        echo(f"{printable(path)}: {label_text(pred)} {prob}".rstrip())
        writer.writerow([str(path), label_text(pred), prob])
    if csv_path:
        atomic_write_text(csv_path, buf.getvalue())
    return n_ok, n_bad
