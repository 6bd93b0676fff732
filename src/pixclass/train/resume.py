"""Per-epoch checkpoints of a training run and reading them back to resume.

Layout under `RUN/checkpoints/`: `epoch-<n>.safetensors` (weights), `epoch-<n>.state.pt`
(optimizer, scheduler, RNG, batch history; loaded with `weights_only=True`) and `last.json`,
written last and atomically, naming the newest complete pair. Older pairs are then removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pixclass.errors import PixclassError
from pixclass.train import checkpoint as ckpt

if TYPE_CHECKING:
    from pixclass.train.learner import Learner


def write_epoch_checkpoint(learn: "Learner", epoch: int, epochs: int, opt, sched) -> Path:
    """Save everything needed to continue after `epoch` (0-based) of a cycle of `epochs`."""
    folder = learn.path / "checkpoints"
    n = learn.epoch_offset + epoch
    weights, state = folder / f"epoch-{n}.safetensors", folder / f"epoch-{n}.state.pt"
    ckpt.save_weights(learn.model, weights, {"arch": learn.arch})
    ckpt.save_state(state, {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else {},
        "rng": ckpt.rng_state(),
        "batch_losses": torch.tensor(learn.recorder.batch_losses, dtype=torch.float64),
        "lrs": torch.tensor(learn.recorder.lrs, dtype=torch.float64),
    })
    pointer = {"weights": weights.name, "state": state.name, "stage_start": learn.epoch_offset,
               "epoch": epoch, "epochs": epochs, "frozen_groups": learn.model.frozen_groups,
               "rows": learn.recorder.rows}
    ckpt.atomic_write_text(folder / "last.json", json.dumps(pointer, indent=1))
    for old in folder.glob("epoch-*"):
        if old.name not in (weights.name, state.name):
            old.unlink(missing_ok=True)
    return folder / "last.json"


# The pointer's fields and their JSON types; file names must be plain names inside checkpoints/.
_POINTER_FIELDS = {"weights": str, "state": str, "stage_start": int, "epoch": int, "epochs": int,
                   "frozen_groups": int, "rows": list}


def read_last_checkpoint(run: str | Path) -> dict[str, Any] | None:
    """The pointer of the newest complete epoch checkpoint, or None when there is none."""
    pointer = Path(run) / "checkpoints" / "last.json"
    if not pointer.is_file():
        return None
    try:
        doc = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise _damaged(pointer, str(err)) from None
    if not isinstance(doc, dict):
        raise _damaged(pointer, f"a JSON {type(doc).__name__}, not an object")
    for name, kind in _POINTER_FIELDS.items():
        value = doc.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise _damaged(pointer, f"'{name}' is {value!r}")
    for name in ("weights", "state"):
        if Path(doc[name]).name != doc[name] or doc[name] in ("", ".", ".."):
            raise _damaged(pointer, f"'{name}' names '{doc[name]}', not a file in checkpoints/")
    if not all(isinstance(r, dict) for r in doc["rows"]):
        raise _damaged(pointer, "'rows' is not a list of epoch records")
    return doc


def _damaged(pointer: Path, why: str) -> PixclassError:
    return PixclassError(f"checkpoint pointer '{pointer}' is damaged ({why}): delete it to restart the run's "
                         "training, or restore it from a copy")


def restore(learn: "Learner", pointer: dict[str, Any]) -> dict[str, Any]:
    """Load weights, freezing state and history from a checkpoint; returns the training state."""
    folder = learn.path / "checkpoints"
    learn.model.freeze_to(int(pointer["frozen_groups"]), learn.train_bn)
    ckpt.load_weights(learn.model, folder / pointer["weights"], learn.device)
    learn.features.clear()
    state = ckpt.load_state(folder / pointer["state"])
    learn.recorder.rows = list(pointer.get("rows", []))
    learn.recorder.batch_losses = state["batch_losses"].tolist()
    learn.recorder.lrs = state["lrs"].tolist()
    learn.epoch_offset = int(pointer["stage_start"])
    state["epoch"] = int(pointer["epoch"])
    return state
