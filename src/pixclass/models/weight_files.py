"""A local weights file: read safely, unwrapped, and checked against an architecture.

Owns `load_weights_file` (`.safetensors`, or `.pth/.pt/.bin/.ckpt` read with
`torch.load(weights_only=True)` so no pickled object can run code; wrappers such as
{"state_dict": ...} and DDP / torch.compile key prefixes removed), `check_fits` (exactly the keys
and shapes of a template state dict) and `WeightsFileError`, which both raise.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import safetensors.torch
import torch

from pixclass.errors import PixclassError

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile add these to every key


class WeightsFileError(PixclassError):
    """A weights file is unreadable, unsafe to load, or does not fit the architecture."""


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from `.safetensors` or a torch file, never unpickling arbitrary objects.

    Accepts a bare state dict or one wrapped as {"state_dict": ...} / {"model": ...}, and strips the
    `module.` / `_orig_mod.` prefixes DDP and torch.compile add. Keys are returned as stored.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file '{path}' does not exist. Pass the path of a .safetensors or .pth file.")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own and OS-level errors for bad files
            raise WeightsFileError(f"cannot read weights file '{path}': not a valid safetensors file ({e}).") from e
    if path.suffix not in _TORCH_SUFFIXES:
        raise WeightsFileError(
            f"cannot read weights file '{path}': unknown suffix '{path.suffix}'; expected .safetensors, "
            f"{', '.join(_TORCH_SUFFIXES)}."
        )
    return _unwrap(_torch_load_weights_only(path), path)


def check_fits(
    state_dict: dict[str, torch.Tensor], template: dict[str, torch.Tensor], origin: object, arch: str
) -> None:
    """Raise `WeightsFileError` unless `state_dict` has exactly the keys and shapes of `template`."""
    missing = [k for k in template if k not in state_dict]
    unexpected = [k for k in state_dict if k not in template]
    if missing or unexpected:
        raise WeightsFileError(
            f"weights '{origin}' do not fit {arch}: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]}). Pick the arch these weights were "
            "trained for."
        )
    for key, expected in template.items():
        if state_dict[key].shape != expected.shape:
            raise WeightsFileError(
                f"weights '{origin}' do not fit {arch}: '{key}' has shape {tuple(state_dict[key].shape)} "
                f"in the file, {tuple(expected.shape)} in the model. Pick the arch these weights were "
                "trained for."
            )


def _torch_load_weights_only(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses classes outside torch's allowlist: the file holds objects, not tensors.
        raise WeightsFileError(
            f"refusing to load '{path}': it contains pickled Python objects, not just tensors "
            "(loading it could run code). Save the weights with torch.save(model.state_dict(), ...) "
            "or as .safetensors."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise WeightsFileError(f"cannot read weights file '{path}': not a torch checkpoint ({e}).") from e


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint, wrappers and key prefixes removed."""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(
            f"cannot use weights file '{path}': expected a state dict of tensors "
            f"(optionally under {' / '.join(repr(k) for k in _WRAPPER_KEYS)}), got {_describe(obj)}."
        )
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a dict of {len(obj)} entries ({', '.join(kinds) or 'empty'})"
    return f"a {type(obj).__name__}"
