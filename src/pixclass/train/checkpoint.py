"""Checkpoint files, written atomically: a kill never leaves a half-written file.

Owns: saving/loading model weights as safetensors, optimizer/scheduler/RNG state as a
tensors-and-numbers torch file (read back with `weights_only=True`, so nothing can run code),
capturing and setting the RNG states, and seeding. Which files make an epoch checkpoint, and
the `last.json` pointer naming the newest one, are `pixclass.train.resume`'s.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pixclass.errors import PixclassError
from pixclass.files import atomic_write
from pixclass.models.backbones import state_mismatch


def save_weights(model: torch.nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Model weights as safetensors; `metadata` values become strings (JSON for non-strings)."""
    save_tensors(model.state_dict(), path, metadata)


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """A state dict as safetensors (on the CPU); `metadata` values become strings (JSON for non-strings)."""
    state = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_weights(model: torch.nn.Module, path: str | os.PathLike, device: str | torch.device = "cpu") -> None:
    path = Path(path)
    if not path.is_file():
        raise PixclassError(f"no saved weights at '{path}'")
    try:
        state = load_file(str(path), device=str(device))
    except Exception as err:  # noqa: BLE001  (a bad file raises many kinds; each becomes one line)
        raise PixclassError(f"cannot read weights '{path}': {err}") from None
    mismatch = state_mismatch(model, state)
    if mismatch:
        raise PixclassError(
            f"weights '{path}' do not fit this model ({mismatch}): was it saved from another "
            "architecture or number of classes?"
        )
    model.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states, in a form `torch.load(weights_only=True)` accepts."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": json.dumps([py[0], list(py[1]), py[2]]),
        "numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = json.loads(state["python"])
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = json.loads(state["numpy"])
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PixclassError(f"no training state at '{path}'") from None
    except Exception as err:  # noqa: BLE001  (a bad file raises many kinds; each becomes one line)
        raise PixclassError(f"cannot read training state '{path}': {err}") from None


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
