"""Per-epoch checkpoints of a training run on disk, and finding them again to resume.

Layout under `RUN/checkpoints/`: `epoch-<n>.safetensors` (weights), `epoch-<n>.state.pt`
(optimizer, scheduler, RNG, batch history; loaded with `weights_only=True`) and `last.json`,
written last and atomically, naming the newest complete pair. Older pairs are then removed.

Deals only in folders, files and dicts: what goes into the state and the pointer, and what is
done with them on resume, is the Learner's (`Learner.training_state`, `Learner.restore`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pixclass.errors import PixclassError
from pixclass.files import atomic_write_text
from pixclass.train import checkpoint as ckpt

# The pointer's fields and their JSON types; file names must be plain names inside checkpoints/.
_POINTER_FIELDS = {"weights": str, "state": str, "stage_start": int, "epoch": int, "epochs": int,
                   "frozen_groups": int, "rows": list}


def write_epoch_checkpoint(folder: Path, n: int, weights: Mapping[str, torch.Tensor], metadata: dict[str, Any],
                           state: dict[str, Any], progress: dict[str, Any]) -> Path:
    """Write epoch `n`'s checkpoint into `folder`; returns the path of the `last.json` naming it.

    Args:
        weights: the model's state dict (saved as safetensors with `metadata`).
        state: tensors and numbers only (read back with `weights_only=True`).
        progress: the pointer's other fields: stage_start, epoch, epochs, frozen_groups, rows.
    """
    weights_file, state_file = folder / f"epoch-{n}.safetensors", folder / f"epoch-{n}.state.pt"
    ckpt.save_tensors(weights, weights_file, metadata)
    ckpt.save_state(state_file, state)
    pointer = {"weights": weights_file.name, "state": state_file.name, **progress}
    atomic_write_text(folder / "last.json", json.dumps(pointer, indent=1))
    for old in folder.glob("epoch-*"):
        if old.name not in (weights_file.name, state_file.name):
            old.unlink(missing_ok=True)
    return folder / "last.json"


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


def checkpoint_files(folder: Path, pointer: dict[str, Any]) -> tuple[Path, Path]:
    """(weights file, state file) that a pointer from `read_last_checkpoint` names in `folder`."""
    return folder / pointer["weights"], folder / pointer["state"]


def _damaged(pointer: Path, why: str) -> PixclassError:
    return PixclassError(f"checkpoint pointer '{pointer}' is damaged ({why}): delete it to restart the run's "
                         "training, or restore it from a copy")
