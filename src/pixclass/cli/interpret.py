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


@app.command()
def interpret(
    run: str = typer.Argument(..., help="A run directory made by `pixclass train`."),
    top_losses: int = typer.Option(9, "--top-losses", min=1, help="Images in the top-losses grid."),
    min_val: int = typer.Option(1, "--min-val", min=1, help="List wrong pairs seen at least this often."),
    heatmap: bool = typer.Option(False, "--heatmap", help="Overlay Grad-CAM heatmaps on the top-losses grid."),
    tune_thresholds: bool = typer.Option(False, "--tune-thresholds",
                                         help="Multi-label: tune one threshold per tag for F-beta on the "
                                              "validation images and ship them in RUN/model.pixclass."),
    beta: float = typer.Option(2.0, "--beta", min=0.01, help="The F-beta that --tune-thresholds maximises "
                                                             "(2: recall counts more, as Planet's F2)."),
) -> None:
    """Confusion matrix, most confused pairs, per-class precision/recall/F1 and top losses of a run's
    validation images; plots go to RUN/interpret/ (regression: residuals), the model card with
    the diagnosis to RUN/report.html."""
    from pixclass.interpret import Interpretation
    from pixclass.interpret.report import write_report
    from pixclass.train import runfolder
    from pixclass.train.recipe import load_trained, read_thresholds, save_thresholds

    run_dir = Path(run)
    runfolder.require_run(run_dir, "interpret")
    with runfolder.RunLock(run_dir):
        learn = load_trained(run_dir)
        interp = Interpretation.from_learner(learn, "valid")
        if tune_thresholds:
            tuned = interp.tune_thresholds(beta)  # refuses a task that is not multi-label
            save_thresholds(run_dir, tuned, beta)
            pairs = ", ".join(f"{c} {t:g}" for c, t in zip(interp.classes, tuned))
            typer.echo(f"thresholds (F{beta:g} on validation): {pairs}")
            _reexport(learn, run_dir, tuned)
        saved = read_thresholds(run_dir)
        if saved is not None and interp.task == "multi":
            interp = Interpretation(interp.probs, interp.targets, interp.classes, interp.task, interp.paths, saved,
                                    interp.heatmapper)
    out = run_dir / runfolder.INTERPRET_DIR
    written = _plots(interp, out, top_losses, heatmap)
    for line in _report(interp, min_val):
        typer.echo(line)
    typer.echo(f"plots: {', '.join(str(p) for p in written)}")
    typer.echo(f"report: {write_report(run_dir, interp)}")


def _reexport(learn, run_dir: Path, thresholds: list[float]) -> None:
    """Write the run's model files again with the tuned thresholds (ONNX too, if it was exported)."""
    from pixclass.export.model_file import ONNX_SUFFIX
    from pixclass.export.onnx import BUNDLE_NAME, export_onnx

    bundle = learn.export(run_dir / BUNDLE_NAME, thresholds)
    typer.echo(f"model: {bundle} (now with these thresholds)")
    onnx = bundle.with_suffix(ONNX_SUFFIX)
    if onnx.is_file():
        typer.echo(f"onnx: {export_onnx(bundle, onnx)} (now with these thresholds)")


def _plots(interp, out: Path, k: int, heatmap: bool = False) -> list[Path]:
    paths = []
    if interp.task == "regression":
        paths.append(out / "residuals.png")
        interp.plot_residuals(paths[-1])
    else:
        paths += [out / "confusion.png", out / "confusion_normalized.png"]
        interp.plot_confusion_matrix(paths[0])
        interp.plot_confusion_matrix(paths[1], normalize=True)
    paths.append(out / "top_losses.png")
    interp.plot_top_losses(k, paths[-1], heatmap=heatmap)
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
