"""The default training recipe behind `pixclass train` and `pixclass demo`, with resume.

Owns: `TrainConfig` (everything needed to rerun, saved as `RUN/config.json`), building the
data from a folder / CSV / the embedded elpv demo, and `run()`: lr_find → frozen stage →
unfrozen stage with discriminative LRs → history, plots, `model.pixclass`. A killed run
continues with `resume(RUN)` from its last complete epoch with the same schedule. A run works
only inside its own folder (locked while it works, see `runfolder`): `config.json` holds the
data's absolute path, never the run's own, so a run folder can be moved or copied and resumed.
"""

from __future__ import annotations

import json
import math
import time
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pixclass.data.resize import DEFAULT_RESIZE
from pixclass.errors import PixclassError
from pixclass.files import atomic_write_text, remove_stale_temps
from pixclass.models.lite_packages import DEFAULT_ARCH
from pixclass.train import runfolder


@dataclass
class TrainConfig:
    """A training run. `data` is a folder, a CSV file, or `elpv:type` / `elpv:defect`."""

    data: str
    out: str = "runs/latest"
    folder: str | None = None
    suffix: str = ""
    fn_col: str | None = None
    label_col: str | None = None
    label_delim: str | None = None
    valid_col: str | None = None
    valid_pct: float | None = None
    arch: str = DEFAULT_ARCH
    weights: str | None = None
    pretrained: bool = True
    size: int = 224
    bs: int = 32
    augment: str = "default"
    resize: str = DEFAULT_RESIZE  # "crop", "pad" or "squish" (`data.resize`, where the default's numbers are)
    epochs: int = 20
    unfreeze_epochs: int = 2
    lr: float | str = "auto"
    unfreeze_lr: float | None = None
    wd: float = 0.01
    # Measured on elpv defects, 5 seeds, 20 cached frozen epochs: 0.1 lifted the mean from 77.7 %
    # to 78.1 % and the worst seed from 77.0 % to 77.3 % (the linear probe: 76.6 %).
    label_smoothing: float = 0.1
    seed: int = 42
    num_workers: int | None = None
    cache_features: bool = True
    skip_bad: bool = False
    # CSV rows naming files outside the image folder (`../x.jpg`, `/etc/x.jpg`) are refused unless True.
    allow_outside: bool = False
    # Filled in by the run: the LR lr_find chose, so a resumed run uses the same schedule.
    resolved_lr: float | None = None
    classes: list[str] = field(default_factory=list)

    def save(self, run: Path) -> None:
        """Write `run/config.json`; `out` is left out: a run folder is wherever it now lies."""
        doc = {k: v for k, v in asdict(self).items() if k != "out"}
        atomic_write_text(run / "config.json", json.dumps(doc, indent=1))

    @classmethod
    def load(cls, run: str | Path) -> TrainConfig:
        """The config of the run folder `run`, with `out` set to that folder."""
        path = Path(run) / "config.json"
        if not path.is_file():
            raise PixclassError(f"'{run}' is not a training run (no config.json): nothing to resume")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise PixclassError(f"'{path}' is damaged ({err}): restore it from a copy or start a new run") from None
        if not isinstance(raw, dict):
            raise PixclassError(f"'{path}' is damaged (a JSON {type(raw).__name__}, not an object): "
                                "restore it from a copy or start a new run")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)} - {"out"}
        values = {k: v for k, v in raw.items() if k in known}
        for name, value in values.items():
            if not _fits(value, hints[name]):
                raise PixclassError(f"'{path}' is damaged: '{name}' is {value!r}, not a {hints[name]}; "
                                    "restore it from a copy or start a new run")
        # A run from before the resize method was a choice trained with "crop", whatever the default now is.
        values.setdefault("resize", "crop")
        if "data" not in values:
            raise PixclassError(f"'{path}' is damaged: it names no 'data'; restore it from a copy or start a new run")
        return cls(**values, out=str(run))

    def with_absolute_paths(self) -> TrainConfig:
        """A copy whose data and weights paths do not depend on the working directory."""
        def absolute(p: str | None) -> str | None:
            return p if p is None or p.startswith("elpv:") else str(Path(p).resolve())
        return replace(self, data=absolute(self.data), weights=absolute(self.weights))


def _fits(value: Any, hint: Any) -> bool:
    """True when a JSON value has the type a TrainConfig field's annotation allows."""
    if hint is Any:
        return True
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if origin in (str, bool) and isinstance(value, origin):
            return True
        if origin is list and isinstance(value, list):
            item = (typing.get_args(option) or (Any,))[0]
            if all(_fits(v, item) for v in value):
                return True
    return False


def data_folder(cfg: TrainConfig) -> Path | None:
    """The folder whose sub-folders are classes, when the data is a folder of images."""
    return Path(cfg.data) if not cfg.data.startswith("elpv:") and Path(cfg.data).is_dir() else None


def build_data(cfg: TrainConfig):
    """The `ImageData` a config describes."""
    from pixclass.data.loaders import ImageData

    common = dict(size=cfg.size, bs=cfg.bs, augment=cfg.augment, resize=cfg.resize, num_workers=cfg.num_workers,
                  skip_bad=cfg.skip_bad, seed=cfg.seed)
    if cfg.data.startswith("elpv:"):
        from pixclass.demo.elpv import elpv_data

        return elpv_data(cfg.data.split(":", 1)[1], **common)
    src = Path(cfg.data)
    if src.is_dir():
        return ImageData.from_folder(src, valid_pct=cfg.valid_pct, **common)
    if src.is_file() and src.suffix.lower() in (".csv", ".tsv", ".txt"):
        return ImageData.from_df(
            read_table(src), path=src.parent, folder=cfg.folder, fn_col=cfg.fn_col or 0,
            label_col=cfg.label_col or 1, suffix=cfg.suffix, label_delim=cfg.label_delim, valid_col=cfg.valid_col,
            valid_pct=cfg.valid_pct, allow_outside=cfg.allow_outside, **common)
    raise PixclassError(f"data '{cfg.data}' is neither a folder of images nor a CSV file")


def read_table(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path, sep=None if path.suffix.lower() != ".csv" else ",", engine="python")
    except Exception as err:
        raise PixclassError(f"cannot read CSV '{path}': {err}") from None


def make_learner(cfg: TrainConfig, progress: bool = True, pretrained: bool | None = None):
    from pixclass.train.learner import Learner

    data = build_data(cfg)
    return Learner(data, arch=cfg.arch, weights=cfg.weights, wd=cfg.wd, path=cfg.out,
                   label_smoothing=cfg.label_smoothing,
                   pretrained=cfg.pretrained if pretrained is None else pretrained,
                   cache_features=cfg.cache_features, checkpoint_every_epoch=True, progress=progress)


def _stages(cfg: TrainConfig) -> list[dict[str, Any]]:
    lr = float(cfg.resolved_lr if cfg.resolved_lr is not None else cfg.lr)
    # The body learns gently: its last group at most 1e-4, the first 100× lower (fastai's lr_mult).
    # Measured on elpv defects after a 78.9 % frozen stage, one unfrozen epoch: 1e-4 kept 78.1 %,
    # 1e-3 (fastai's usual range) fell to 75.4 %.
    hi = cfg.unfreeze_lr or min(lr, 1e-4)
    plan = [dict(frozen=True, epochs=cfg.epochs, lr=lr, pct_start=0.25, div=25.0),
            dict(frozen=False, epochs=cfg.unfreeze_epochs, lr=slice(hi / 100, hi), pct_start=0.3, div=5.0)]
    start = 0
    for stage in plan:
        stage["start"] = start
        start += stage["epochs"]
    return [s for s in plan if s["epochs"] > 0]


def run(cfg: TrainConfig, progress: bool = True, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train as `cfg` says (or continue it); returns a summary with the final validation metrics.

    Args:
        cfg: the run; `cfg.out` is its folder (locked while this runs).
        resume: continue the run in `cfg.out` from its last complete epoch.
        overwrite: start afresh in `cfg.out` even if it holds other files or an earlier run
            (only the files a run writes are replaced).
    """
    run_dir = Path(cfg.out)
    if resume:
        runfolder.require_run(run_dir, "resume")
    else:
        cfg = cfg.with_absolute_paths()
        folder = data_folder(cfg)
        if folder is not None:
            runfolder.check_outside_data(run_dir, folder)
        runfolder.check_fresh(run_dir, overwrite)  # before the lock: never touch a folder we refuse
    with runfolder.RunLock(run_dir):
        for folder in (run_dir, run_dir / "checkpoints", run_dir / "plots"):
            remove_stale_temps(folder)  # half-written files of a killed run (never under a real name)
        if not resume:
            runfolder.prepare(run_dir, overwrite)
        return _train(cfg, run_dir, progress, resume)


def _train(cfg: TrainConfig, run_dir: Path, progress: bool, resume: bool) -> dict[str, Any]:
    from pixclass.train import resume as resuming
    from pixclass.train.checkpoint import seed_everything, set_rng_state

    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    learn = make_learner(cfg, progress)
    cfg = replace(cfg, classes=list(learn.data.classes))
    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    learn.on_epoch_end.append(lambda lrn, _row: lrn.recorder.to_csv(run_dir / "history.csv"))
    pointer = resuming.read_last_checkpoint(run_dir) if resume else None
    if pointer is None:
        if cfg.lr == "auto" and cfg.resolved_lr is None:
            learn.freeze()
            finder = learn.lr_find()
            finder.plot(run_dir / "plots" / "lr_find.png")
            cfg = replace(cfg, resolved_lr=finder.suggestion)
            _say(progress, f"lr_find suggests {cfg.resolved_lr:.2e}")
        cfg.save(run_dir)
        # Training starts from the same random state whether lr_find ran now or before a kill.
        seed_everything(cfg.seed + 1)
    state = learn.restore(pointer) if pointer else None
    stages = _stages(cfg)
    for stage in stages:
        done = pointer is not None and (pointer["stage_start"] > stage["start"] or
                                        (pointer["stage_start"] == stage["start"] and
                                         pointer["epoch"] + 1 >= stage["epochs"]))
        if done:
            if pointer["stage_start"] == stage["start"]:
                # Killed after this stage's last epoch checkpoint: finish what follows the stage,
                # then go on from the random state that checkpoint saved, as the run would have.
                _end_stage(learn, cfg, stages.index(stage), run_dir, progress)
                set_rng_state(state["rng"])
            continue
        here = state if pointer is not None and pointer["stage_start"] == stage["start"] else None
        if here is None:
            learn.freeze() if stage["frozen"] else learn.unfreeze()
        learn.epoch_offset = stage["start"]
        learn.fit_one_cycle(stage["epochs"], stage["lr"], pct_start=stage["pct_start"], div=stage["div"], resume=here)
        _end_stage(learn, cfg, stages.index(stage), run_dir, progress)
    kept = _keep_better_stage(learn, stages, run_dir, progress)
    return _finish(learn, cfg, run_dir, time.perf_counter() - t0, kept)


def _end_stage(learn, cfg: TrainConfig, index: int, run_dir: Path, progress: bool) -> None:
    """What follows a stage: its named save, and the linear probe after the cached frozen stage."""
    learn.save(f"stage-{index + 1}")
    if learn.model.is_frozen and cfg.cache_features:
        _record_probe(learn, run_dir, progress)


def _record_probe(learn, run_dir: Path, progress: bool) -> None:
    # The floor to beat: a linear model on the same frozen features (seconds, features cached).
    from pixclass.train.probe import probe_from_cache

    acc = probe_from_cache(learn)
    if acc is not None:
        atomic_write_text(run_dir / "probe.json", json.dumps({"linear_probe_accuracy": acc}))
        _say(progress, f"linear probe on the frozen features: accuracy {acc:.4f}")


def _keep_better_stage(learn, stages: list[dict], run_dir: Path, progress: bool) -> str | None:
    """If the unfrozen stage ended worse than the frozen one, go back to the frozen model.

    Both are kept on disk (`checkpoints/stage-1`, `stage-2`); the choice is printed and recorded.
    """
    rows = learn.recorder.rows
    if len(stages) < 2 or not rows or not stages[0]["frozen"] or not learn.data.valid_paths:
        return None  # nothing to compare on without a validation set: the last stage stands
    name, higher = _primary_metric(learn)
    end_frozen = next((r for r in rows if r["epoch"] == stages[1]["start"] - 1), None)
    if end_frozen is None:
        return None
    a, b = end_frozen[name], rows[-1][name]
    if (b < a) if higher else (b > a):
        learn.load("stage-1")
        learn.model.freeze_to(-1, learn.train_bn)
        _say(progress, f"the unfrozen stage ended with {name} {b:.4f}, worse than the frozen stage's {a:.4f}: "
                       f"kept the frozen-stage model (the unfrozen one is checkpoints/stage-2.safetensors)")
        return "stage-1"
    return "stage-2"


def _primary_metric(learn) -> tuple[str, bool]:
    for name, higher in (("accuracy", True), ("fbeta", True), ("error_rate", False)):
        if name in learn.metrics:
            return name, higher
    return "valid_loss", False


def resume(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Continue the run in `run_dir` (wherever it now lies) from its last complete epoch."""
    runfolder.require_run(Path(run_dir), "resume")
    return run(TrainConfig.load(run_dir), progress=progress, resume=True)


def _finish(learn, cfg: TrainConfig, run_dir: Path, seconds: float, kept: str | None = None) -> dict[str, Any]:
    learn.save("final")
    plots = run_dir / "plots"
    learn.recorder.plot_losses(plots / "losses.png")
    learn.recorder.plot_lr(plots / "lr.png")
    learn.recorder.to_csv(run_dir / "history.csv")
    model_path = learn.export(run_dir / "model.pixclass")
    final = learn.validate() if kept == "stage-1" or not learn.recorder.rows else learn.recorder.rows[-1]
    metrics = {k: v for k, v in final.items()
               if k not in ("epoch", "time", "train_loss") and not (isinstance(v, float) and math.isnan(v))}
    summary = {"run": str(run_dir), "model": str(model_path), "seconds": round(seconds, 1),
               "metrics": metrics if learn.data.valid_paths else {},
               "n_valid": len(learn.data.valid_paths), "n_train": len(learn.data.train_paths),
               "kept": kept, "weights_source": learn.body_info.weights_source}
    probe = run_dir / "probe.json"
    if probe.is_file():
        summary.update(json.loads(probe.read_text()))
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """(Re)write `RUN/model.pixclass` from the run's final (or newest epoch) weights."""
    run_dir = Path(run_dir)
    runfolder.require_run(run_dir, "export")
    with runfolder.RunLock(run_dir):
        return _export_locked(TrainConfig.load(run_dir), run_dir, out)


def final_weights(run_dir: Path, hint: str = "") -> Path:
    """`RUN/checkpoints/final.safetensors`, or one line saying the run is not finished (plus `hint`)."""
    final = run_dir / "checkpoints" / "final.safetensors"
    if not final.is_file():
        raise PixclassError(f"'{run_dir}' has no final weights ({final} is missing): finish training it first "
                            f"('pixclass train --resume {run_dir}'){hint}")
    return final


def load_trained(run_dir: Path, cfg: TrainConfig | None = None) -> Any:
    """The finished run's Learner with its final weights (the ones `RUN/model.pixclass` holds).

    The verbs that read a run (interpret, label-issues, dupes --embeddings, the report) call it under
    `runfolder.RunLock(run_dir)`."""
    final = final_weights(run_dir)
    learn = make_learner(cfg or TrainConfig.load(run_dir), progress=False, pretrained=False)
    learn.load(final)
    return learn


def _export_locked(cfg: TrainConfig, run_dir: Path, out: str | Path | None) -> Path:
    from pixclass.train import resume as resuming

    learn = make_learner(cfg, progress=False, pretrained=False)
    final = run_dir / "checkpoints" / "final.safetensors"
    pointer = resuming.read_last_checkpoint(run_dir)
    if final.is_file():
        learn.load(final)
    elif pointer is not None:
        learn.restore(pointer)
    else:
        raise PixclassError(f"'{run_dir}' has no trained weights yet: train it first")
    if pointer is not None:
        learn.recorder.rows = list(pointer.get("rows", []))
    return learn.export(Path(out) if out else run_dir / "model.pixclass", read_thresholds(run_dir))


def read_thresholds(run_dir: Path) -> list[float] | None:
    """The per-tag thresholds `pixclass interpret --tune-thresholds` saved in the run, if any."""
    path = run_dir / runfolder.THRESHOLDS
    if not path.is_file():
        return None
    try:
        return [float(t) for t in json.loads(path.read_text(encoding="utf-8"))["thresholds"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise PixclassError(f"cannot read '{path}' ({type(err).__name__}): delete it, or tune again with "
                            f"'pixclass interpret {run_dir} --tune-thresholds'") from None


def save_thresholds(run_dir: Path, thresholds: list[float], beta: float) -> Path:
    """Keep tuned per-tag thresholds in the run, so every later export of it ships them."""
    path = run_dir / runfolder.THRESHOLDS
    atomic_write_text(path, json.dumps({"thresholds": thresholds, "beta": beta, "tuned_on": "valid"}, indent=1))
    return path


def _say(progress: bool, text: str) -> None:
    if progress:
        from rich.console import Console

        Console(highlight=False).print(text)
