"""`write_report(RUN)`: the run's model card as ONE self-contained HTML page, `RUN/report.html`.

Owns the page: data (classes, counts per split, image sizes), training (recipe, lr_find, losses
and LR plots, history), results (metrics, linear-probe floor, confusion matrices, most confused
pairs, per-class table, top losses; regression: residuals and MSE), speed (the exported model
timed on this machine), limits (what the validation set can tell, with a 95 % interval),
diagnosis (`diagnose`'s findings) and data issues (`label_issues.csv`, `dupes.csv`). Every image
is embedded as a base64 `data:` URI and the CSS is inlined: no JavaScript, no network, the file
opens offline and can be mailed. Every piece of text from the run is escaped with `html.escape`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Iterable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from pixclass import interrupt
from pixclass.errors import PixclassError
from pixclass.interpret.diagnosis import Finding, diagnose
from pixclass.train.runfolder import DUPES, LABEL_ISSUES, REPORT

REPORT_NAME = REPORT  # re-exported: the CLI and tests name it from here
# Image headers read for the size summary: a header read is well under 1 ms, so 200 cost < 0.2 s
# on any dataset, and 200 is enough for a median and a typical range.
SIZE_SAMPLE = 200
# Single-image predictions timed for the speed section (their median is shown). Each is one
# forward pass of batch 1 plus decoding; 10 take well under a second for efficientnet_lite0.
SPEED_RUNS = 10
# Rows of label_issues.csv / dupes.csv / most-confused pairs shown; the files hold them all.
TABLE_ROWS = 10
TOP_LOSSES = 9  # images in the top-losses grid, a 3 × 3 square
Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


def write_report(run_dir: str | os.PathLike, interp: Any = None) -> Path:
    """Write `run_dir/report.html` for a finished run and return its path.

    Args:
        run_dir: a run folder made by `pixclass train` (with `summary.json`).
        interp: the run's validation `Interpretation`, when the caller has one; else it is
            computed from the run's final weights.
    """
    from pixclass.files import atomic_write_text
    from pixclass.train import runfolder
    from pixclass.train.recipe import TrainConfig

    run = Path(run_dir)
    runfolder.require_run(run, "write a report of")
    summary = _json(run / "summary.json")
    if summary is None:
        raise PixclassError(f"'{run}' has no summary.json: the run has not finished; finish it first "
                            f"('pixclass train --resume {run}')")
    cfg = TrainConfig.load(run)
    data, interp = _data_and_interpretation(run, cfg, interp)
    history = _history(run / "history.csv")
    train_counts = _counts(data, "train")
    probe = summary.get("linear_probe_accuracy")
    findings = diagnose(history, summary, train_counts, probe, _leak_pairs(run / DUPES, data))
    parts = [
        lambda: _header(run, cfg, data, summary),
        lambda: _data_section(data),
        lambda: _training_section(run, cfg, summary, history),
        lambda: _results_section(summary, interp),
        lambda: _speed_section(run, data),
        lambda: _limits_section(interp, data),
        lambda: _diagnosis_section(findings),
        lambda: _issues_section(run, data),
    ]
    body = []
    for part in parts:
        interrupt.check()  # a Ctrl-C deferred by the caller (`pixclass train`) stops between sections
        body.append(part())
    interrupt.check()
    out = run / REPORT_NAME
    atomic_write_text(out, _page(f"pixclass report: {run.resolve().name}", body))
    return out


# ----- inputs ---------------------------------------------------------------------------------
def _data_and_interpretation(run: Path, cfg, interp: Any):
    """The run's data, and its validation Interpretation (None without a validation set)."""
    from pixclass.train.recipe import build_data, load_trained

    if interp is not None:
        return build_data(cfg), interp
    from pixclass.interpret.interpretation import Interpretation
    from pixclass.train import runfolder

    with runfolder.RunLock(run):
        learn = load_trained(run, cfg)
        if not learn.data.valid_paths:
            return learn.data, None
        return learn.data, Interpretation.from_learner(learn, "valid")


def _json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _history(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _csv_rows(path: Path) -> list[dict[str, str]] | None:
    """The rows of an optional CSV of the run, or None when it is not there or unreadable."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _counts(data, split: str) -> dict[str, int]:
    from pixclass.data.labels import class_counts

    return class_counts(data.space, data.train_labels if split == "train" else data.valid_labels)


def _straddling(rows: list[dict[str, str]], data) -> list[dict[str, str]]:
    """The pairs of dupes.csv with one file in the run's training split and one in its validation
    split (`pixclass dupes` can only call them leaks for a train/ valid/ folder layout)."""
    split = {str(Path(p).resolve()): "train" for p in data.train_paths}
    split.update({str(Path(p).resolve()): "valid" for p in data.valid_paths})
    return [r for r in rows if {split.get(str(Path(r.get(k) or "").resolve())) for k in ("a", "b")} ==
            {"train", "valid"}]


def _leak_pairs(path: Path, data) -> int | None:
    """Certain train/valid copies: the pairs dupes.csv calls leaks, and exact copies straddling the
    run's split. Near pairs across the split are counted in the report but not as leaks: a
    perceptual hash also matches different pictures that look alike (on elpv, 565 phash pairs at
    distance 0 straddle the demo's split: mostly distinct cells)."""
    rows = _csv_rows(path)
    if rows is None:
        return None
    exact = [r for r in _straddling(rows, data) if r.get("kind") == "exact"]
    return sum(r.get("kind") == "leak" for r in rows) + len(exact)


# ----- HTML pieces ----------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return "nan" if math.isnan(value) else f"{value:.{digits}g}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], raw_cols: Sequence[int] = ()) -> str:
    """An HTML table; cells are escaped (numbers right-aligned) except columns in `raw_cols`,
    which the caller has already made safe HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if i in raw_cols:
                cells.append(f"<td>{v}</td>")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{_e(_num(v))}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str, caption: str | None = None, mime: str = "image/png") -> str:
    src = f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"
    tag = f'<img src="{src}" alt="{_e(alt)}">'
    return f"<figure>{tag}<figcaption>{_e(caption or alt)}</figcaption></figure>"


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _file_img(path: Path, alt: str) -> str:
    if not path.is_file():
        return f'<p class="note">{_e(alt)}: not in this run ({_e(path.name)} is missing).</p>'
    return _img(path.read_bytes(), alt)


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{_e(text)}</p>' if cls else f"<p>{_e(text)}</p>"


def _section(anchor: str, title: str, parts: Iterable[str]) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


SECTIONS = (("data", "Data"), ("training", "Training"), ("results", "Results"), ("speed", "Speed"),
            ("limits", "Limits"), ("diagnosis", "Diagnosis"), ("data-issues", "Data issues"))


def _page(title: str, body: list[str]) -> str:
    css = files("pixclass.interpret").joinpath("static", "report.css").read_text(encoding="utf-8")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{css}</style></head><body>{''.join(body)}</body></html>\n")


# ----- sections -------------------------------------------------------------------------------
def _header(run: Path, cfg, data, summary: dict) -> str:
    import pixclass

    task = {"single": "single-label classification", "multi": "multi-label classification",
            "regression": "regression"}[data.task]
    nav = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in SECTIONS)
    return (f"<h1>Model card: {_e(run.resolve().name)}</h1>"
            + _p(f"{task} · data {cfg.data} · written {time.strftime('%Y-%m-%d %H:%M')} by pixclass "
                 f"{pixclass.__version__} · model {summary.get('model', run / 'model.pixclass')}", "meta")
            + f"<nav>{nav}</nav>")


def _data_section(data) -> str:
    parts = [_table(["split", "images"], [("train", len(data.train_paths)), ("valid", len(data.valid_paths)),
                                          ("test (unlabelled)", len(data.test_paths))])]
    if data.task == "regression":
        parts.append("<h3>Targets</h3>")
        rows = []
        for split, labels in (("train", data.train_labels), ("valid", data.valid_labels)):
            vals = [float(v) for v in labels]
            if vals:
                rows.append((split, len(vals), min(vals), statistics.median(vals), max(vals)))
        parts.append(_table(["split", "n", "min", "median", "max"], rows))
    else:
        word, words = ("tag", "tags") if data.task == "multi" else ("class", "classes")
        parts.append(f"<h3>{len(data.classes)} {words} · images per {word} and split</h3>")
        train, valid = _counts(data, "train"), _counts(data, "valid")
        parts.append(_table([word, "train", "valid"], [(c, train.get(c, 0), valid.get(c, 0)) for c in data.classes]))
    parts += ["<h3>Image sizes</h3>", _sizes(list(data.train_paths) + list(data.valid_paths))]
    return _section("data", "Data", parts)


def _sizes(paths: list) -> str:
    from PIL import Image

    sample = random.Random(0).sample(paths, min(SIZE_SAMPLE, len(paths)))
    ws, hs, bad = [], [], 0
    for p in sample:
        try:
            with Image.open(p) as im:  # the header only: no pixels are decoded
                w, h = im.size
        except (OSError, ValueError, Image.DecompressionBombError):
            bad += 1
            continue
        ws.append(w)
        hs.append(h)
    if not ws:
        return _p("No image could be read for the size summary.", "note")
    rows = [("width", statistics.median(ws), min(ws), max(ws)), ("height", statistics.median(hs), min(hs), max(hs))]
    note = (f"A sample of {len(sample)} of the {len(paths)} labelled images, as stored (before resizing to "
            f"the model's input)" + (f"; {bad} could not be read." if bad else "."))
    return _table(["pixels", "median", "min", "max"], rows) + _p(note, "note")


KEPT = {None: "the last stage", "stage-1": "the frozen stage (stage-1): the unfrozen one ended worse",
        "stage-2": "the unfrozen stage (stage-2)"}


def _training_section(run: Path, cfg, summary: dict, history: list[dict[str, str]]) -> str:
    lr = cfg.resolved_lr if cfg.resolved_lr is not None else cfg.lr
    recipe = [("architecture", cfg.arch), ("weights", summary.get("weights_source") or
                                          (cfg.weights or ("ImageNet" if cfg.pretrained else "random init"))),
              ("input size", f"{cfg.size} px"), ("batch size", cfg.bs),
              ("frozen epochs", cfg.epochs), ("unfrozen epochs", cfg.unfreeze_epochs),
              ("learning rate", f"{_num(lr)}" + (" (lr_find's suggestion)" if cfg.lr == "auto" else "")),
              ("weight decay", cfg.wd), ("label smoothing", cfg.label_smoothing), ("augmentation", cfg.augment),
              ("seed", cfg.seed), ("kept", KEPT.get(summary.get("kept"), summary.get("kept"))),
              ("wall time", f"{summary.get('seconds', float('nan')):.0f} s")]
    parts = [_table(["recipe", "value"], [(k, str(v)) for k, v in recipe]),
             _file_img(run / "plots" / "lr_find.png", "lr_find: loss against learning rate") if cfg.lr == "auto" else
             _p(f"lr_find did not run: the learning rate was given (--lr {cfg.lr}).", "note"),
             _file_img(run / "plots" / "losses.png", "training and validation loss"),
             _file_img(run / "plots" / "lr.png", "learning rate per batch")]
    if history:
        keys = [k for k in history[0] if k != "time"]
        parts += ["<h3>History</h3>", _table(keys, [[_maybe_float(r.get(k)) for k in keys] for r in history])]
    return _section("training", "Training", parts)


def _maybe_float(text: Any) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in str(text) else value


def _results_section(summary: dict, interp: Any) -> str:
    metrics = summary.get("metrics") or {}
    parts = [_table(["metric", "value"], list(metrics.items())) if metrics else
             _p("No validation set: the run was trained on all its images, so there are no metrics.", "note")]
    probe = summary.get("linear_probe_accuracy")
    parts.append(_p(f"Linear-probe floor: a logistic regression on the frozen body's features reaches accuracy "
                    f"{probe:.4f}; the trained model should do at least as well." if probe is not None else
                    "Linear-probe floor: not measured (it is computed for single-label runs with a validation "
                    "set and cached features)."))
    if interp is not None:
        parts += _interp_parts(interp)
    return _section("results", "Results", parts)


def _interp_parts(interp: Any) -> list[str]:
    parts: list[str] = []
    if interp.task == "regression":
        parts.append(_p(f"Mean squared error on the {len(interp)} validation images: {interp.losses().mean():.4g}."))
        parts.append(_img(_fig_png(interp.plot_residuals()), "predicted against actual, and residuals"))
    else:
        parts.append(_img(_fig_png(interp.plot_confusion_matrix()), "confusion matrix (counts)"))
        parts.append(_img(_fig_png(interp.plot_confusion_matrix(normalize=True)),
                          "confusion matrix, each row divided by its total (recall on the diagonal)"))
        if interp.task == "single":
            pairs = interp.most_confused()[:TABLE_ROWS]
            parts.append("<h3>Most confused</h3>")
            parts.append(_table(["actual", "predicted", "images"], pairs) if pairs else
                         _p("No validation image was mistaken for another class.", "ok"))
        parts.append("<h3>Per class</h3>" if interp.task == "single" else "<h3>Per tag</h3>")
        parts.append(_table(["class", "precision", "recall", "F1", "support"],
                            [(r["class"], r["precision"], r["recall"], r["f1"], r["support"])
                             for r in interp.per_class()]))
    if interp.paths is not None and len(interp):
        parts.append("<h3>Top losses</h3>")
        parts.append(_img(_fig_png(interp.plot_top_losses(min(TOP_LOSSES, len(interp)))),
                          "the validation images the model got most wrong",
                          "the validation images with the highest loss (titles: actual/predicted/loss"
                          + ("/probability of actual)" if interp.task == "single" else ")")))
    return parts


def _speed_section(run: Path, data) -> str:
    from pixclass.export.predictor import load_model

    bundle = run / "model.pixclass"
    if not bundle.is_file():
        return _section("speed", "Speed", [_p(f"Not measured: {bundle} is missing ('pixclass export {run}').",
                                              "note")])
    images = (list(data.valid_paths) or list(data.train_paths))[:5]
    t0 = time.perf_counter()
    try:
        model = load_model(bundle)
    except (PixclassError, RuntimeError) as err:  # e.g. an architecture ONNX cannot export: the rest stands
        return _section("speed", "Speed", [_p(f"Not measured: loading {bundle} failed ({err}).", "note")])
    load_s = time.perf_counter() - t0
    times = []
    for i in range(SPEED_RUNS if images else 0):
        t = time.perf_counter()
        model.predict(images[i % len(images)])
        times.append((time.perf_counter() - t) * 1000)
    rows = [("median per image", f"{statistics.median(times):.1f} ms" if times else "no image to time"),
            ("images timed", f"{len(times)} single-image predictions ({len(images)} files, read from disk each time)"),
            ("load", f"{load_s:.2f} s (building the runtime and one warm-up prediction)"),
            ("runtime", model.runtime), ("machine", _machine())]
    note = ("One image at a time, decoding and resizing included, on the machine that wrote this report; "
            "batches (pixclass predict) are faster per image.")
    return _section("speed", "Speed", [_table(["measure", "value"], rows), _p(note, "note")])


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _limits_section(interp: Any, data) -> str:
    n = len(data.valid_paths)
    parts = []
    if interp is None or n == 0:
        parts.append(_p("There is no validation set, so nothing in this report measures how the model does on "
                        "images it has not seen. Train with a validation split (--valid-pct) before trusting it."))
    elif interp.task == "single":
        right = int((interp.preds == interp.targets.astype(np.int64)).sum())
        lo, hi = wilson_interval(right, n)
        parts.append(_p(f"The validation set has {n} images: the accuracy of {right / n:.1%} is known to within a "
                        f"95 % interval of {lo:.1%} to {hi:.1%} (Wilson). Differences between runs smaller than "
                        "that interval may be chance."))
    elif interp.task == "multi":
        half = Z95 * math.sqrt(0.25 / n)
        parts.append(_p(f"The validation set has {n} images: any rate measured on them (e.g. how often a tag is "
                        f"found) is known to within about ±{half:.1%} at 95 %, less for rare tags."))
    else:
        lo, hi = _bootstrap_mean(interp.losses())
        parts.append(_p(f"The validation set has {n} images: the mean squared error of {interp.losses().mean():.4g} "
                        f"has a 95 % bootstrap interval of {lo:.4g} to {hi:.4g}."))
    if interp is not None and n and data.task != "regression":
        parts.append(_p(_smallest_class(_counts(data, "valid"), "tag" if data.task == "multi" else "class")))
    parts.append(_p("The validation images come from the same collection as the training images. They tell how the "
                    "model does on pictures like these, not on pictures taken elsewhere, with another camera or "
                    "at another time." + (" The model always answers with one of its classes: it cannot say "
                                          "'none of these'." if data.task == "single" else "")))
    return _section("limits", "Limits", parts)


def _smallest_class(valid: dict[str, int], word: str) -> str:
    missing = sorted(c for c, k in valid.items() if k == 0)
    if missing:
        return (f"No validation image of {', '.join(repr(c) for c in missing)}: how the model does on "
                f"{'that ' + word if len(missing) == 1 else 'those'} is not measured at all.")
    small = min(valid, key=valid.get)
    return (f"The smallest {word} in validation, '{small}', has {valid[small]} image{'s' if valid[small] > 1 else ''}: "
            f"its recall can only move in steps of {1 / valid[small]:.0%}.")


def _bootstrap_mean(values: np.ndarray, resamples: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _diagnosis_section(findings: list[Finding]) -> str:
    if not findings:
        return _section("diagnosis", "Diagnosis", [_p("Nothing found: the losses, classes and checks "
                                                      "look healthy.", "ok")])
    parts = []
    for f in findings:
        evidence = ", ".join(f"{k}={_short(v)}" for k, v in f.evidence.items())
        parts.append(f'<div class="finding {_e(f.severity)}"><span class="kind">{_e(f.severity)}: {_e(f.kind)}</span>'
                     f" {_e(f.message)}<div class=\"evidence\">{_e(evidence)}</div></div>")
    return _section("diagnosis", "Diagnosis", parts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def _issues_section(run: Path, data) -> str:
    parts = ["<h3>Label issues</h3>"]
    issues = _csv_rows(run / LABEL_ISSUES)
    if issues is None:
        parts.append(_p(f"Not computed yet: 'pixclass label-issues {run}' ranks every image's label "
                        "(writes label_issues.csv).", "note"))
    else:
        flagged = sum(r.get("issue") == "1" for r in issues)
        parts.append(_p(f"{flagged} of {len(issues)} images are flagged as likely mislabelled; the "
                        f"{min(TABLE_ROWS, len(issues))} most suspicious:"))
        top = issues[:TABLE_ROWS]
        root, names = _relative([r.get("path", "") for r in top])
        rows = [(_thumb(r.get("path", "")), f'<span class="path">{_e(name)}</span>', r.get("label", ""),
                 r.get("suggested", ""), _maybe_float(r.get("score")), r.get("split", ""), r.get("issue", ""))
                for r, name in zip(top, names)]
        parts.append(_p(f"Paths are relative to {root}.", "note") if root else "")
        parts.append(_table(["", "path", "label", "suggested", "score", "split", "issue"], rows, raw_cols=(0, 1)))
    parts.append("<h3>Duplicates</h3>")
    dupes = _csv_rows(run / DUPES)
    if dupes is None:
        parts.append(_p(f"Not computed yet: 'pixclass dupes {run} --csv {run / DUPES}' lists exact and "
                        "near copies and train/valid leaks.", "note"))
    else:
        kinds = {k: sum(r.get("kind") == k for r in dupes) for k in ("exact", "near", "leak")}
        across = _straddling(dupes, data)
        parts.append(_p(f"{len(dupes)} pairs: {kinds['exact']} exact, {kinds['near']} near, {kinds['leak']} leaks. "
                        f"{len(across)} pairs have one image in this run's training split and one in its validation "
                        f"split ({sum(r.get('kind') == 'exact' for r in across)} exact copies); near pairs can be "
                        "pictures that merely look alike, so look at a few before removing any."))
        top = dupes[:TABLE_ROWS]
        root, names = _relative([r.get(k, "") for r in top for k in ("a", "b")])
        parts.append(_p(f"Paths are relative to {root}.", "note") if root else "")
        parts.append(_table(["a", "b", "kind", "distance"],
                            [(names[2 * i], names[2 * i + 1], r.get("kind", ""), _maybe_float(r.get("distance")))
                             for i, r in enumerate(top)]))
    return _section("data-issues", "Data issues", parts)


def _relative(paths: list[str]) -> tuple[str, list[str]]:
    """The folder all `paths` share (or "") and each path relative to it: long absolute paths
    would fill the table."""
    try:
        root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    except ValueError:  # relative and absolute mixed, or other drives
        root = ""
    if len(root) <= 1:
        return "", paths
    return root, [os.path.relpath(p, root) for p in paths]


def _thumb(path: str) -> str:
    """A small embedded JPEG of an image, or nothing when it cannot be read."""
    from pixclass.data.images import open_image
    from pixclass.errors import ImageReadError

    try:
        img = open_image(path, min_size=64)
    except (ImageReadError, TypeError, OSError):
        return ""
    img.thumbnail((112, 112))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return (f'<img class="thumb" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}" '
            f'alt="{_e(Path(path).name)}">')
