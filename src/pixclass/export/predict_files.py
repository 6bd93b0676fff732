"""Batch prediction over files and folders: what `pixclass predict` does, minus the terminal.

Owns: expanding paths (folders recursively), predicting them in batches, the predictions CSV and
sorting into folders (through `sort_files`). Unreadable files are results with a reason, never a
crash. The caller sees each result as it comes (`on_file`) and gets a `Summary` at the end.

The CSV has the columns `path,label,prob,error`: `label` is the class (multi-label: the predicted
tags joined by a space; regression: the value) and `prob` its probability (multi-label: the lowest
among the predicted tags; regression: empty); `error` is empty for a predicted file, and the reason
for an unreadable one (whose label and prob are empty). `top_k=K` adds `top1,prob1,…,topK,probK`:
the K most probable classes, highest first (for multi-label, whether over the threshold or not).
The csv module quotes what needs quoting, so any file name (commas, quotes, newlines) reads back.
The CSV is written atomically once at the end, also after an interruption (what was done so far);
it replaces an earlier predictions CSV but never another file.
"""

from __future__ import annotations

import csv as csvlib
import io
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pixclass.data.images import is_image_file
from pixclass.errors import PixclassError
from pixclass.export.model_file import printable
from pixclass.export.predictor import Prediction, load_model
from pixclass.files import atomic_write

__all__ = ["FileResult", "Summary", "csv_header", "csv_row", "expand_paths", "label_text", "predict_files",
           "printable"]

CSV_COLUMNS = ["path", "label", "prob", "error"]


@dataclass
class FileResult:
    """One input file: its prediction or why it could not be read, and where sorting put it."""

    path: Path
    prediction: Prediction | None
    error: str | None
    placed: list[tuple[Path, str]] = field(default_factory=list)  # (destination, "copied"|"moved"|"already there")


@dataclass
class Summary:
    """What a `predict_files` call did."""

    n_files: int = 0
    n_predicted: int = 0
    n_unreadable: int = 0
    labels: Counter = field(default_factory=Counter)  # label text -> images (multi-label: per tag)
    placed: Counter = field(default_factory=Counter)  # "copied"|"moved"|"already there" -> files
    csv_path: Path | None = None


def expand_paths(paths: Sequence[str | os.PathLike], skip: str | os.PathLike | None = None) -> list[Path]:
    """Files as given; folders replaced by the image files below them (hidden folders skipped).

    Each file appears once, at its first place. Args: `skip`: a folder left out of every folder
    searched (the --sort-into folder, so a second run does not predict what the first one sorted).
    """
    skip_real = os.path.realpath(skip) if skip is not None else None
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                                 and (skip_real is None or os.path.realpath(os.path.join(root, d)) != skip_real))
                for f in sorted(files):
                    if is_image_file(f):
                        add(Path(root) / f)
        elif p.exists() or p.is_symlink():
            add(p)
        else:
            raise PixclassError(f"'{printable(p)}' does not exist")
    return out


def label_text(pred: Prediction) -> str:
    """The `label` column: the class, the tags joined by a space, or the regression value."""
    if isinstance(pred.label, list):
        return " ".join(pred.label)
    return f"{pred.label:.6g}" if isinstance(pred.label, float) else str(pred.label)


def prob_text(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.4f}"


def csv_header(top_k: int = 0) -> list[str]:
    """The CSV's columns: `path,label,prob,error`, then `top1,prob1,…` for `top_k` classes."""
    return CSV_COLUMNS + [c for i in range(1, top_k + 1) for c in (f"top{i}", f"prob{i}")]


def csv_row(path: Path, pred: Prediction | None, error: str | None, top_k: int = 0) -> list[str]:
    """One CSV row, as many cells as `csv_header(top_k)`."""
    if pred is None:
        return [str(path), "", "", error or ""] + [""] * (2 * top_k)
    top = pred.top(top_k) if top_k else []
    cells = [str(path), label_text(pred), prob_text(pred.prob), ""]
    cells += [c for name, p in top for c in (name, prob_text(p))]
    return cells + [""] * (2 * (top_k - len(top)))


def check_csv_target(csv_path: Path) -> None:
    """Refuse to write the CSV over anything but an earlier predictions CSV (or an empty file)."""
    if csv_path.is_dir():
        raise PixclassError(f"--csv '{printable(csv_path)}' is a folder; give a file name such as predictions.csv")
    if not csv_path.exists():
        return
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            first = next(csvlib.reader(f), [])
    except (OSError, UnicodeDecodeError, csvlib.Error):
        first = None
    if first is not None and (first == [] or first[:3] == CSV_COLUMNS[:3]):
        return  # ours (this version's or the older path,label,prob): replaced, as a re-run expects
    raise PixclassError(f"'{printable(csv_path)}' exists and is not a predictions CSV; give --csv another name "
                        f"(it is never overwritten)")


def check_options(top_k: int | None, sort_into: str | os.PathLike | None, move: bool, min_prob: float | None) -> None:
    """Refuse option combinations that cannot mean anything, before the model is loaded."""
    if top_k is not None and top_k < 1:
        raise PixclassError(f"--top-k must be at least 1; got {top_k}")
    if min_prob is not None and not 0 <= min_prob <= 1:
        raise PixclassError(f"--min-prob is a probability from 0 to 1; got {min_prob}")
    if sort_into is None and (move or min_prob is not None):
        raise PixclassError(f"{'--move' if move else '--min-prob'} only applies with --sort-into DIR")
    if sort_into is not None and os.path.exists(sort_into) and not os.path.isdir(sort_into):
        raise PixclassError(f"--sort-into '{printable(sort_into)}' is a file; give a folder (it is made if missing)")


def predict_files(
    model_path: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    csv_path: str | os.PathLike | None = None,
    *,
    bs: int | None = None,
    top_k: int | None = None,
    tta: bool = False,
    sort_into: str | os.PathLike | None = None,
    move: bool = False,
    min_prob: float | None = None,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> Summary:
    """Predict every image under `paths`; optionally write the CSV and sort files into folders.

    Args:
        model_path: a `.pixclass` bundle or an exported `.onnx` file.
        paths: image files and folders (searched recursively, hidden folders and `sort_into` skipped).
        csv_path: write the predictions CSV here (see the module docstring for its columns).
        bs: images per forward pass (default: the predictor's).
        top_k: add the K most probable classes to each CSV row (classifiers only).
        tta: test-time augmentation (see `Predictor.predict_many`).
        sort_into: put each predicted image into `sort_into/<label>/` (see `sort_files`); unreadable
            files stay where they are.
        move: move instead of copy (single-label models only).
        min_prob: predictions under this probability go to `sort_into/_unsure/`.
        on_start: called with the number of files once they are known.
        on_file: called with each `FileResult`, in input order, once it is predicted (and sorted).

    Raises:
        PixclassError: bad options, a missing path or model, no image files, or a file that
            cannot be sorted (the CSV then holds what was done).
    """
    from pixclass.export import sort_files

    check_options(top_k, sort_into, move, min_prob)
    csv_file = Path(csv_path) if csv_path is not None else None
    if csv_file is not None:
        check_csv_target(csv_file)
    model = load_model(model_path)
    if top_k is not None and model.task == "regression":
        raise PixclassError("--top-k ranks classes, and a regression model predicts a number; leave it out")
    if sort_into is not None:
        sort_files.check_sorting(model.task, move)
    files = expand_paths(paths, skip=sort_into)
    if not files:
        raise PixclassError(f"no image files found in {', '.join(printable(p) for p in paths)}")
    k = min(top_k, len(model.classes)) if top_k else 0
    summary = Summary(n_files=len(files), csv_path=csv_file)
    rows = [csv_header(k)]
    if on_start:
        on_start(len(files))
    try:
        for path, pred, error in model.predict_many(files, bs=bs, tta=tta):
            result = FileResult(path, pred, error)
            if pred is None:
                summary.n_unreadable += 1
            else:
                summary.n_predicted += 1
                summary.labels.update(pred.label if isinstance(pred.label, list) else [label_text(pred)])
                if sort_into is not None:
                    for folder in sort_files.target_folders(pred, model.task, min_prob):
                        result.placed.append(sort_files.place(path, Path(sort_into) / folder, move))
                    summary.placed.update(status for _, status in result.placed)
            rows.append(csv_row(path, pred, error, k))
            if on_file:
                on_file(result)
    finally:
        if csv_file is not None:
            write_csv(csv_file, rows)
    return summary


def write_csv(path: Path, rows: list[list[str]]) -> None:
    """Write `rows` as UTF-8 CSV, atomically. A file name that is not valid UTF-8 (possible on
    Linux) keeps its exact bytes, so the path in the CSV is the path on disk."""
    buf = io.StringIO()
    csvlib.writer(buf).writerows(rows)
    data = buf.getvalue().encode("utf-8", "surrogateescape")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
