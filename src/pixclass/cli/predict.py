"""CLI verbs that use an exported model: `predict` (files and folders → lines, CSV, sorted folders)
and `info` (what a model file holds).

Thin over `pixclass.export.predict_files` and `pixclass.export.model_file`; nothing heavy is
imported until a command runs, and `info` never imports torch.

Output of `predict`: per-image lines on stdout (by default only without --csv: with a CSV the file
holds them, and thousands of lines would bury the summary); a progress bar on stderr when stderr
is a terminal that the lines are not already scrolling; the summary on stderr.
"""

from __future__ import annotations

import sys

import typer

from pixclass.cli import app, on_interrupt


@app.command()
def predict(
    model: str = typer.Argument(..., help="A .pixclass model file, or a .onnx file from 'pixclass export RUN --onnx'."),
    paths: list[str] = typer.Argument(..., help="Image files and folders "
                                      "(searched recursively; hidden folders skipped)."),
    csv: str | None = typer.Option(
        None, help="Write path,label,prob,error to this CSV (one row per file, unreadable ones with the reason). "
                   "An earlier predictions CSV is replaced; any other file is never overwritten."),
    top_k: int | None = typer.Option(
        None, "--top-k", help="Also give the K most probable classes: CSV columns top1,prob1,…,topK,probK."),
    sort_into: str | None = typer.Option(
        None, "--sort-into",
        help="Put each predicted image into DIR/<label>/ (multi-label: into each tag's folder). Nothing is "
             "overwritten: a taken name gets ' (2)', an identical file already there counts as sorted. "
             "Unreadable files stay where they are. DIR is never searched for images."),
    move: bool = typer.Option(
        False, "--move/--copy",
        help="With --sort-into: move the files (only after their prediction succeeded), or copy them (default). "
             "Multi-label models copy only."),
    min_prob: float | None = typer.Option(
        None, "--min-prob",
        help="With --sort-into: a prediction under this probability goes to DIR/_unsure/ (multi-label: only "
             "tags at least this probable count; an image with none goes to _unsure)."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average the image and its mirror (slower)."),
    bs: int | None = typer.Option(None, help="Images per batch (default: 8 on a CPU, 64 on a GPU)."),
    lines: bool | None = typer.Option(
        None, "--lines/--no-lines",
        help="Print one line per image on stdout (default: yes, unless --csv is given)."),
) -> None:
    """Predict images with an exported model: lines, a CSV, or images sorted into folders.

    Progress shows on stderr when it is a terminal; the summary goes to stderr.
    """
    from pixclass.export.predict_files import predict_files

    show_lines = lines if lines is not None else csv is None
    out = _Output(show_lines, top_k, csv)
    with on_interrupt(out.interrupted), out:
        summary = predict_files(model, paths, csv, bs=bs, top_k=top_k, tta=tta, sort_into=sort_into, move=move,
                                min_prob=min_prob, on_start=out.start, on_file=out.file)
    for line in _summary_lines(summary, sort_into, csv):
        typer.echo(line, err=True)


class _Output:
    """Per-image lines and the progress bar of `predict`; counts what was done for an interruption."""

    def __init__(self, show_lines: bool, top_k: int | None, csv: str | None):
        self.show_lines, self.top_k, self.csv = show_lines, top_k, csv
        # A bar where a person watches stderr, unless the per-image lines already scroll there.
        self.bar_enabled = sys.stderr.isatty() and not (show_lines and sys.stdout.isatty())
        self.bar = self.task = None
        self.done = self.placed = 0

    def __enter__(self) -> _Output:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, total: int) -> None:
        if self.bar_enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False)
            self.task = self.bar.add_task("predict", total=total)
            self.bar.start()

    def file(self, result) -> None:  # a FileResult
        self.done += 1
        self.placed += bool(result.placed)
        if self.show_lines:
            typer.echo(_line(result, self.top_k))
        if self.bar is not None:
            self.bar.update(self.task, advance=1)

    def interrupted(self) -> str:
        sorted_ = f", {self.placed} of them sorted" if self.placed else ""
        kept = f"; {self.csv} holds their rows" if self.csv else ""
        return (f"interrupted after {self.done} file(s){sorted_}{kept}; run the same command again "
                f"(a file already sorted is recognised, never copied twice)")


def _line(result, top_k: int | None) -> str:
    from pixclass.export.predict_files import label_text, printable, prob_text

    name = printable(result.path)
    pred = result.prediction
    if pred is None:
        return f"{name}: unreadable ({result.error})"
    text = f"{name}: {label_text(pred)} {prob_text(pred.prob)}".rstrip()
    # The next most probable classes (single-label: the first is the label, already shown).
    others = pred.top(top_k)[isinstance(pred.label, str):] if top_k else []
    if others:
        text += " (" + ", ".join(f"{c} {prob_text(p)}" for c, p in others) + ")"
    for dest, status in result.placed:
        text += f" -> {printable(dest)}" + (" (already there)" if status == "already there" else "")
    return text


def _summary_lines(summary, sort_into: str | None, csv: str | None) -> list[str]:
    from pixclass.export.predict_files import printable

    counts = ", ".join(f"{printable(label)} {n}" for label, n in summary.labels.most_common(10))
    more = len(summary.labels) - 10
    lines = [f"predicted {summary.n_predicted} of {summary.n_files} image(s)"
             + (f": {counts}" + (f", and {more} more labels" if more > 0 else "") if counts else "")]
    if sort_into:
        done = ", ".join(f"{n} {status}" for status, n in sorted(summary.placed.items()))
        lines.append(f"sorted into {printable(sort_into)}: {done or 'nothing'}")
    if summary.n_unreadable:
        where = " (reasons in the CSV)" if csv else ""
        kept = "; they were left where they are" if sort_into else ""
        lines.append(f"{summary.n_unreadable} file(s) could not be read{where}{kept}; "
                     f"run 'pixclass verify' on their folder")
    if csv:
        lines.append(f"wrote {summary.n_predicted + summary.n_unreadable} row(s) to {printable(csv)}")
    return lines


@app.command()
def info(
    model: str = typer.Argument(..., help="A .pixclass model file or a .onnx file from 'pixclass export RUN --onnx'."),
    as_json: bool = typer.Option(False, "--json", help="Print the model's description as JSON."),
) -> None:
    """What a model file holds: classes, arch, input size, task, training metrics, pixclass version.

    Reads only the file's header: fast, and torch is not imported.
    """
    import json

    from pixclass.export.model_file import info_lines, read_model_meta

    meta = read_model_meta(model)
    if as_json:
        typer.echo(json.dumps(meta, indent=2, ensure_ascii=False))
        return
    for line in info_lines(meta, model):
        typer.echo(line)
