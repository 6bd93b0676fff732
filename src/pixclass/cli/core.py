"""CLI verbs of the training core: train, lr-find, export, demo.

Each is a thin call into `pixclass.train.recipe` or `pixclass.export`; torch is imported
inside the commands so `pixclass --help` stays fast.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import typer

from pixclass.cli import app, on_interrupt
from pixclass.data.resize import RESIZE_METHODS
from pixclass.errors import PixclassError
from pixclass.train.recipe import TrainConfig


def _resize(value: str) -> str:
    if value not in RESIZE_METHODS:
        raise typer.BadParameter(f"{value!r} is not a resize method: choose one of {', '.join(RESIZE_METHODS)}")
    return value


def _lr(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise PixclassError(f"--lr must be a number or 'auto'; got '{value}'") from None


@app.command()
def train(
    data: str | None = typer.Argument(None, help="Folder (ImageNet layout or one folder per class), CSV, "
                                      "or elpv:type / elpv:defect."),
    folder: str | None = typer.Option(None, help="CSV only: folder of the image files, relative to the CSV."),
    fn_col: str | None = typer.Option(None, help="CSV column of file names (default: the first)."),
    label_col: str | None = typer.Option(None, help="CSV column of labels (default: the second)."),
    label_delim: str | None = typer.Option(None, help="Split labels on this for multi-label, e.g. ' '."),
    suffix: str = typer.Option("", help="CSV only: appended to file names, e.g. '.jpg' "
                               "(found automatically when unique)."),
    valid_col: str | None = typer.Option(None, help="CSV boolean column marking validation rows."),
    valid_pct: float | None = typer.Option(None, help="Random validation share when the data has no split "
                                           "(default 0.2)."),
    arch: str = typer.Option(TrainConfig.arch, help="Any timm architecture name."),
    weights: str | None = typer.Option(None, help="Pretrained weights file (.safetensors/.pth) to start from."),
    pretrained: bool = typer.Option(True, help="Start from ImageNet weights (--no-pretrained: random init)."),
    size: int = typer.Option(TrainConfig.size, help="Input size in pixels."),
    bs: int = typer.Option(TrainConfig.bs, help="Batch size."),
    epochs: int = typer.Option(TrainConfig.epochs,
                               help="Epochs with the pretrained body frozen (cheap: cached features)."),
    unfreeze_epochs: int = typer.Option(TrainConfig.unfreeze_epochs, help="Then epochs with everything trainable "
                                        "(0: stop after the frozen stage)."),
    lr: str = typer.Option(str(TrainConfig.lr), help="Peak learning rate, or 'auto' for lr_find's suggestion."),
    augment: str = typer.Option(TrainConfig.augment,
                                help="Augmentation preset: default, light, none, satellite, top_down."),
    resize: str = typer.Option(TrainConfig.resize, callback=_resize, help="How a picture becomes the square input "
                               "(fastai's ResizeMethod): "
                               + "; ".join(f"{k}: {v}" for k, v in RESIZE_METHODS.items()) + "."),
    label_smoothing: float = typer.Option(TrainConfig.label_smoothing,
                                          help="Label smoothing of single-label cross-entropy."),
    seed: int = typer.Option(TrainConfig.seed, help="Seed for the split, shuffling and initialisation."),
    workers: int | None = typer.Option(None, help="Loader processes (default: one per core)."),
    skip_bad: bool = typer.Option(False, help="Skip unreadable images with a warning instead of stopping."),
    allow_outside: bool = typer.Option(False, "--allow-outside",
                                       help="CSV only: allow rows naming files outside the image folder "
                                       "(../, absolute)."),
    out: str | None = typer.Option(None, help="Run directory (default: runs/<data name>)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Start afresh in --out even if it holds other files or an earlier run."),
    resume: str | None = typer.Option(None, help="Continue the run in this directory from its last complete epoch."),
    report: bool = typer.Option(True, help="Write RUN/report.html when training ends (--no-report: skip it, "
                                           "about 3 s on a tiny run; 'pixclass interpret RUN' writes it later)."),
) -> None:
    """Train a classifier: lr_find, frozen stage, unfrozen stage; writes RUN/model.pixclass."""
    from pixclass.interrupt import deferred
    from pixclass.train import recipe

    if resume:
        with on_interrupt(lambda: _train_interrupted(Path(resume))), deferred():
            summary = recipe.resume(resume)
    else:
        if data is None:
            raise PixclassError("give the training data (a folder or CSV), or --resume RUN")
        if valid_col and valid_pct is not None:
            raise PixclassError("use either --valid-col or --valid-pct, not both")
        cfg = recipe.TrainConfig(
            data=data, out=out or f"runs/{_run_name(data)}", folder=folder, suffix=suffix, fn_col=fn_col,
            label_col=label_col, label_delim=label_delim, valid_col=valid_col, valid_pct=valid_pct, arch=arch,
            weights=weights, pretrained=pretrained, size=size, bs=bs, augment=augment, resize=resize,
            label_smoothing=label_smoothing, epochs=epochs, unfreeze_epochs=unfreeze_epochs, lr=_lr(lr),
            seed=seed, num_workers=workers, skip_bad=skip_bad, allow_outside=allow_outside)
        with on_interrupt(lambda: _train_interrupted(Path(cfg.out))), deferred():
            summary = recipe.run(cfg, overwrite=overwrite)
    _print_summary(summary)
    if report:
        _write_report(summary["run"])


def _train_interrupted(run_dir: Path) -> str:
    """What a Ctrl-C during training kept, and how to go on."""
    import json

    try:
        pointer = json.loads((run_dir / "checkpoints" / "last.json").read_text())
        done = f"epochs up to {int(pointer['stage_start']) + int(pointer['epoch']) + 1} are saved in {run_dir}"
    except (OSError, ValueError, KeyError, TypeError):
        done = "no epoch had finished"
    if (run_dir / "config.json").is_file():
        return f"training interrupted: {done}; continue with 'pixclass train --resume {run_dir}'"
    return f"training interrupted: {done}; run the same command again to start over"


def _run_name(data: str) -> str:
    return data.replace(":", "-") if data.startswith("elpv:") else (Path(data).stem or "run")


def _print_summary(summary: dict) -> None:
    if summary["metrics"]:
        typer.echo("valid: " + "  ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items()))
    else:
        typer.echo(f"valid: no validation set (trained on all {summary['n_train']} images)")
    typer.echo(f"model: {summary['model']}  ({summary['seconds']:.0f} s)")


def _write_report(run_dir: str) -> None:
    """Write RUN/report.html after training (a CLI step: train never imports interpret).

    The trained run is complete by now, so a report that cannot be written, or a Ctrl-C while it
    is written, is one line on stderr and the command still succeeds (exit 0): a script's next
    step (export, predict) has its model. Ctrl-C is deferred to a safe point as in training."""
    from pixclass.train.runfolder import REPORT

    # The report takes seconds on a tiny run and about a minute on elpv (it predicts the validation
    # images again and times the exported model): say what is happening.
    path = None
    try:
        typer.echo(f"writing the report ({Path(run_dir) / REPORT}) ...")  # a Ctrl-C from here on is caught
        from pixclass.interpret.report import write_report
        from pixclass.interrupt import deferred

        with deferred():
            path = write_report(run_dir)
    except PixclassError as err:
        typer.echo(f"pixclass: report not written: {err}", err=True)
    except KeyboardInterrupt:
        if path is None:  # (a Ctrl-C after the last safe point still got a whole report)
            typer.echo(f"pixclass: report not written (interrupted); the trained run is complete: "
                       f"'pixclass interpret {run_dir}' writes it", err=True)
    if path is not None:
        typer.echo(f"report: {path}")


@app.command("lr-find")
def lr_find(
    data: str = typer.Argument(..., help="Folder or CSV, as for `train`."),
    folder: str | None = typer.Option(None), fn_col: str | None = typer.Option(None),
    label_col: str | None = typer.Option(None), label_delim: str | None = typer.Option(None),
    valid_pct: float | None = typer.Option(None), arch: str = typer.Option(TrainConfig.arch),
    weights: str | None = typer.Option(None), size: int = typer.Option(TrainConfig.size),
    bs: int = typer.Option(TrainConfig.bs),
    plot: str = typer.Option("lr_find.png", help="Where to save the loss-vs-LR plot."),
) -> None:
    """Run the learning-rate range test on the frozen model; print the suggestion, save the plot."""
    from pixclass.train import recipe

    cfg = recipe.TrainConfig(data=data, folder=folder, fn_col=fn_col, label_col=label_col,
                             label_delim=label_delim, valid_pct=valid_pct, arch=arch, weights=weights,
                             size=size, bs=bs)
    learn = recipe.make_learner(cfg)
    finder = learn.lr_find()
    finder.plot(plot)
    typer.echo(f"suggested lr: {finder.suggestion:.2e}  (plot: {plot})")


@app.command()
def export(
    run: str = typer.Argument(..., help="A run directory made by `pixclass train` (with --onnx: or a .pixclass)."),
    out: str | None = typer.Option(None, help="Where to write the bundle (default RUN/model.pixclass); "
                                              "--onnx writes the same name ending in .onnx."),
    onnx: bool = typer.Option(False, "--onnx", help="Also write RUN/model.onnx from RUN/model.pixclass: one "
                                                    "file that ONNX Runtime runs without torch."),
) -> None:
    """(Re)write RUN/model.pixclass: one safe file (safetensors + JSON, no pickle); --onnx adds RUN/model.onnx.

    With --onnx the existing RUN/model.pixclass is converted as it is (no training data needed); it is
    written first when it is missing or --out names another file.
    """
    from pixclass.export.model_file import ONNX_SUFFIX
    from pixclass.export.onnx import BUNDLE_NAME, export_onnx
    from pixclass.train import runfolder
    from pixclass.train.recipe import export_run

    src = Path(run)
    if onnx and src.is_file():  # a bundle: convert it, next to itself or to --out
        _say_written("onnx", export_onnx(src, out))
        return
    if out is not None and Path(out).suffix.lower() == ONNX_SUFFIX:
        raise PixclassError(f"--out names the .pixclass bundle, not '{out}'; --onnx writes the bundle's name "
                            f"ending in {ONNX_SUFFIX}")
    bundle = src / BUNDLE_NAME
    if out is not None or not onnx or not bundle.is_file():
        bundle = export_run(run, out)
        _say_written("model", bundle)
    else:
        _say_written("model", bundle, "as it was")
    if onnx:
        with runfolder.RunLock(src) if (src / "config.json").is_file() else nullcontext():
            _say_written("onnx", export_onnx(bundle, bundle.with_suffix(ONNX_SUFFIX)))


def _say_written(what: str, path: Path, note: str = "") -> None:
    typer.echo(f"{what}: {path} ({path.stat().st_size / 1e6:.1f} MB{', ' + note if note else ''})")


@app.command()
def demo(
    task: str = typer.Option("type", help="elpv task: 'type' (mono vs poly) or 'defect' (4 levels)."),
    out: str | None = typer.Option(None, help="Run directory (default runs/demo-<task>)."),
    epochs: int = typer.Option(TrainConfig.epochs, help="Frozen epochs (cheap: cached features)."),
    unfreeze_epochs: int = typer.Option(0, help="Unfrozen epochs (each takes minutes on a CPU)."),
) -> None:
    """Train the default architecture (efficientnet_lite0) on the embedded solar-cell photos, export it,
    predict a few."""
    import shutil

    from pixclass.demo.elpv import elpv_split
    from pixclass.interrupt import deferred
    from pixclass.train import recipe

    t0 = time.perf_counter()
    run_dir = Path(out or f"runs/demo-{task}")
    if _is_finished_demo_run(run_dir):
        shutil.rmtree(run_dir)  # a finished demo run is ours to redo; never anything else
    cfg = recipe.TrainConfig(data=f"elpv:{task}", out=str(run_dir), epochs=epochs, unfreeze_epochs=unfreeze_epochs)
    typer.echo(f"pixclass demo: elpv solar cells, task '{task}', {cfg.arch}, "
               f"{len(elpv_split()['valid_idx'])} validation images")
    with on_interrupt(lambda: _train_interrupted(run_dir)), deferred():
        summary = recipe.run(cfg)
    _print_summary(summary)
    _demo_predictions(summary["model"], task)
    acc = summary["metrics"].get("accuracy")
    typer.echo(f"validation accuracy: {acc * 100:.2f} %   wall time: {time.perf_counter() - t0:.0f} s")
    _write_report(summary["run"])  # after the wall time: it measures the demo's training, as before


def _is_finished_demo_run(run_dir: Path) -> bool:
    import json

    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return str(config.get("data", "")).startswith("elpv:") and (run_dir / "summary.json").is_file()


def _demo_predictions(model_path: str, task: str) -> None:
    from pixclass.demo.elpv import elpv_items, elpv_split
    from pixclass.export.predictor import load_model

    model = load_model(model_path)
    paths, labels = elpv_items(task)
    for i in elpv_split()["valid_idx"][:5]:
        p = model.predict(paths[i])
        typer.echo(f"  {paths[i].name}: predicted {p.label} ({p.prob:.3f}), true {labels[i]}")
