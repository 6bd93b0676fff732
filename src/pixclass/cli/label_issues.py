"""`pixclass label-issues RUN`: every image of a run's data ranked by how likely its label is wrong.

Thin over `pixclass.interpret.label_issues.label_issues`: rebuilds the run's Learner from
`RUN/config.json` with its final weights (under the run's lock), predicts every train and valid
image out of fold, prints the most suspicious and how many cleanlab flags, and writes them all to
`RUN/label_issues.csv` (or `--csv OUT`). Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixclass.cli import app
from pixclass.errors import PixclassError


@app.command("label-issues")
def label_issues(
    run: str = typer.Argument(..., help="A run directory made by `pixclass train`."),
    folds: int = typer.Option(5, "--folds", help="K: a model fitted on K-1 folds predicts the K-th."),
    csv_out: Annotated[str | None, typer.Option("--csv", help="Where to write every image's row "
                                                "(default: RUN/label_issues.csv).")] = None,
    top: int = typer.Option(20, "--top", min=0, help="Most suspicious images to print."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment."),
    fold_model: str = typer.Option("linear", "--fold-model",
                                   help="linear (seconds) or head (the run's head recipe per fold: minutes)."),
) -> None:
    """Rank every train and valid image by how likely its label is wrong (out-of-fold predictions
    on the run's cached features, scored by cleanlab); writes path,label,suggested,score,loss,split,issue."""
    from pixclass.interpret.label_issues import FOLD_MODELS
    from pixclass.interpret.label_issues import label_issues as rank_labels
    from pixclass.train import runfolder
    from pixclass.train.recipe import load_trained

    run_dir = Path(run)
    runfolder.require_run(run_dir, "rank the labels of")
    if fold_model not in FOLD_MODELS:
        raise PixclassError(f"unknown --fold-model '{fold_model}': choose {' or '.join(FOLD_MODELS)}")
    if folds < 2:
        raise PixclassError(f"--folds must be at least 2 (a model fitted on K-1 folds predicts the K-th); got {folds}")
    with runfolder.RunLock(run_dir):
        learn = load_trained(run_dir)
        issues = rank_labels(learn, folds=folds, seed=seed, fold_model=fold_model)
        out = issues.to_csv(Path(csv_out) if csv_out is not None else run_dir / runfolder.LABEL_ISSUES)
    for line in _report(issues, top):
        typer.echo(line)
    typer.echo(f"cleanlab flags {issues.n_issues} of {len(issues)} images "
               f"({_count(issues, 'train')} train, {_count(issues, 'valid')} valid); "
               f"{folds} folds, {issues.seconds:.1f} s; every image: {out}")


def _count(issues, split: str) -> int:
    return sum(r.issue and r.split == split for r in issues.rows)


def _report(issues, top: int) -> list[str]:
    """The `top` most suspicious rows: score, loss, split, flag, given → suggested label, path."""
    rows = issues.rows[:top]
    if not rows:
        return []
    width = max(len(r.label) for r in rows)
    lines = [f"{'score':>6}  {'loss':>7}  {'split':<5}  flag  {'label':<{width}}  suggested → path"]
    lines += [f"{r.score:6.3f}  {r.loss:7.3f}  {r.split:<5}  {'yes' if r.issue else '   ':4}  {r.label:<{width}}  "
              f"{r.suggested} → {r.path}" for r in rows]
    return lines
