"""`pixclass interpret RUN`: what a trained run gets wrong on its validation images.

Thin over `pixclass.interpret.Interpretation`: rebuilds the run's Learner from `RUN/config.json`,
loads its final weights (the ones `RUN/model.pixclass` holds), prints the per-class table and the
most confused pairs, writes the plots to `RUN/interpret/` and the model card to `RUN/report.html`
(`pixclass.interpret.report`). Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pixclass.cli import app
from pixclass.errors import PixclassError


@app.command()
def interpret(
    run: str = typer.Argument(..., help="A run directory made by `pixclass train`."),
    top_losses: int = typer.Option(9, "--top-losses", min=1, help="Images in the top-losses grid."),
    min_val: int = typer.Option(1, "--min-val", min=1, help="List wrong pairs seen at least this often."),
) -> None:
    """Confusion matrix, most confused pairs, per-class precision/recall/F1 and top losses of a run's
    validation images; plots go to RUN/interpret/ (regression: residuals), the model card with
    the diagnosis to RUN/report.html."""
    from pixclass.interpret import Interpretation
    from pixclass.interpret.report import write_report
    from pixclass.train import runfolder
    from pixclass.train.recipe import TrainConfig, make_learner

    run_dir = Path(run)
    runfolder.require_run(run_dir, "interpret")
    with runfolder.RunLock(run_dir):
        final = run_dir / "checkpoints" / "final.safetensors"
        if not final.is_file():
            raise PixclassError(f"'{run_dir}' has no final weights ({final} is missing): finish training it first "
                                f"('pixclass train --resume {run_dir}')")
        learn = make_learner(TrainConfig.load(run_dir), progress=False, pretrained=False)
        learn.load(final)
        interp = Interpretation.from_learner(learn, "valid")
    out = run_dir / "interpret"
    written = _plots(interp, out, top_losses)
    for line in _report(interp, min_val):
        typer.echo(line)
    typer.echo(f"plots: {', '.join(str(p) for p in written)}")
    typer.echo(f"report: {write_report(run_dir, interp)}")


def _plots(interp, out: Path, k: int) -> list[Path]:
    paths = []
    if interp.task == "regression":
        paths.append(out / "residuals.png")
        interp.plot_residuals(paths[-1])
    else:
        paths += [out / "confusion.png", out / "confusion_normalized.png"]
        interp.plot_confusion_matrix(paths[0])
        interp.plot_confusion_matrix(paths[1], normalize=True)
    paths.append(out / "top_losses.png")
    interp.plot_top_losses(k, paths[-1])
    return paths


def _report(interp, min_val: int) -> list[str]:
    """The per-class table and most confused pairs (regression: the mean squared error)."""
    if interp.task == "regression":
        return [f"{len(interp)} validation images; mean squared error {interp.losses().mean():.4g}"]
    rows = interp.per_class()
    width = max([len("class")] + [len(r["class"]) for r in rows])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    lines += [f"{r['class']:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:5.3f}  {r['support']:7d}"
              for r in rows]
    if interp.task == "single":
        pairs = interp.most_confused(min_val)
        lines.append(f"most confused (actual → predicted, at least {min_val}):" if pairs else
                     f"no wrong pair seen at least {min_val} time{'s' if min_val > 1 else ''}")
        lines += [f"  {a} → {p}: {n}" for a, p, n in pairs]
    return lines
