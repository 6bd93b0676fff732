"""The `.pixclass` bundle: one safetensors file holding the weights and a JSON description.

Owns the file format. Tensors are the model's weights; the string metadata key `pixclass`
holds a JSON document (format version, timm arch, head config, classes, task, thresholds,
input size, crop policy, normalization, pixclass version, training summary). Loading builds
the architecture from its name and loads tensors: nothing in the file can run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pixclass.errors import PixclassError
from pixclass.files import atomic_write
from pixclass.models.backbones import ImageClassifier, create_body, state_mismatch
from pixclass.models.head import HeadConfig

FORMAT = "pixclass-bundle"
FORMAT_VERSION = 1


def save_bundle(path: str | Path, model: ImageClassifier, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights and `meta` (JSON-able) to `path`, atomically."""
    path = Path(path)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).contiguous()
             for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"pixclass": json.dumps(doc)}))
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON description of a bundle, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise PixclassError(f"model file '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("pixclass")
    except Exception:
        raise PixclassError(
            f"'{path}' is not a pixclass model (not a safetensors file); export one with 'pixclass export RUN'"
        ) from None
    if raw is None:
        raise PixclassError(f"'{path}' is a safetensors file but not a pixclass model (no 'pixclass' metadata)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise PixclassError(
            f"'{path}' uses bundle format {meta.get('format_version')}; this pixclass reads up to "
            f"{FORMAT_VERSION}: upgrade pixclass"
        )
    return meta


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> tuple[ImageClassifier, dict[str, Any]]:
    """Rebuild the model from its arch name and head config, then load the weights."""
    meta = read_meta(path)
    body, _ = create_body(meta["arch"], pretrained=False)
    model = ImageClassifier(body, HeadConfig.from_dict(meta["head"]))
    state = load_file(str(path), device=str(device))
    mismatch = state_mismatch(model, state)
    if mismatch:
        raise PixclassError(
            f"'{path}' does not match its own description ({mismatch}): the file was edited or damaged; export it again"
        )
    model.load_state_dict(state)
    model.to(device).eval()
    return model, meta


def export_learner(learn: Any, path: Path) -> Path:
    """Bundle a trained Learner: weights plus what prediction needs to preprocess and decode."""
    import pixclass

    data, info = learn.data, learn.body_info
    rows = learn.recorder.rows
    meta = {
        "arch": learn.arch,
        "head": learn.model.head.cfg.to_dict(),
        "task": data.task,
        "classes": data.classes,
        "threshold": learn.thresh,
        "input_size": data.size,
        "resize": "shorter-side-then-center-crop",
        "mean": list(data.mean),
        "std": list(data.std),
        "pixclass_version": pixclass.__version__,
        "weights_source": info.weights_source,
        "training": {"epochs": len(rows), "final": rows[-1] if rows else None,
                     "n_train": len(data.train_paths), "n_valid": len(data.valid_paths)},
    }
    return save_bundle(path, learn.model, meta)
