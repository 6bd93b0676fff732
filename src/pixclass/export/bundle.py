"""The `.pixclass` bundle: one safetensors file holding the weights and a JSON description.

Owns the file format and loading it. Tensors are the model's weights; the string metadata key
`pixclass` holds a JSON document (format version, timm arch, head config, classes, task, thresholds,
input size, resize method, normalization, pixclass version, training summary) whose schema is
`bundle_meta`. Loading builds the architecture from its name and loads tensors: nothing in the file
can run code. And it checks before it allocates: the description against the schema; the tensors'
names, shapes and dtypes, read from the safetensors header, against the model built on the `meta`
device; a forward pass of meta tensors at the input size. Only then are the tensors read and the
model built, at the size they really have. Every problem is one `PixclassError` line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pixclass.errors import PixclassError
from pixclass.export.bundle_meta import (
    DAMAGED,
    FORMAT,
    FORMAT_VERSION,
    validate_meta,
)
from pixclass.export.model_file import Header
from pixclass.export.model_file import read_bundle_header as _read_header
from pixclass.export.model_file import safetensors_errors as _safetensors_errors
from pixclass.files import atomic_write
from pixclass.models.backbones import ImageClassifier, create_body, state_mismatch
from pixclass.models.head import HeadConfig

# torch dtype -> safetensors dtype name. A tensor must have exactly its model's dtype (F32 weights,
# I64 counters): I8/U8 quantised, F16 or F8 weights are refused, never converted.
_DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                torch.uint8: "U8", torch.bool: "BOOL"}


def save_bundle(path: str | Path, model: ImageClassifier, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights and `meta` (JSON-able) to `path`, atomically.

    The description is validated first: pixclass never writes a bundle it would refuse to load.
    """
    path = Path(path)
    text = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta})
    validate_meta(json.loads(text), path, next_step="not written, as pixclass could not load it")
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).contiguous()
             for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"pixclass": text}))
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The validated JSON description of a bundle, without reading its weights."""
    return _read_header(Path(path))[0]


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> tuple[ImageClassifier, dict[str, Any]]:
    """Rebuild the model from its arch name and head config, then load the weights.

    Raises:
        PixclassError: the file is missing, not a bundle, or its description, tensors or data are
            inconsistent (one line naming the file).
    """
    path = Path(path)
    meta, header = _read_header(path)
    with torch.device("meta"):  # the architecture without memory behind it
        skeleton = _build(meta, path)
    _check_tensors(path, skeleton, header)
    ran_on_meta = _check_forward(path, skeleton, meta)
    with _safetensors_errors(f"'{path}' could not be read: its tensor data is damaged; export it again"):
        state = load_file(str(path), device="cpu")
    if {k: (_DTYPE_NAMES.get(v.dtype), tuple(v.shape)) for k, v in state.items()} != header:
        raise PixclassError(f"'{path}' changed while it was being read; load it again")
    _check_finite(path, state)
    model = _build(meta, path)  # real, at the size of the tensors just checked
    model.load_state_dict(state)
    if not ran_on_meta:
        _check_forward(path, model, meta)
    model.to(device).eval()
    return model, meta


def _build(meta: dict[str, Any], path: Path) -> ImageClassifier:
    try:
        body, info = create_body(meta["arch"], pretrained=False)
    except MemoryError:
        raise
    except Exception as err:  # e.g. timm refusing an unknown pretrained tag
        raise PixclassError(f"'{path}' names architecture '{meta['arch']}', which timm cannot build "
                            f"({_first_line(err)}); {DAMAGED}") from None
    head = HeadConfig.from_dict(meta["head"])
    if head.n_in != info.n_features:
        raise PixclassError(f"'{path}' is not a usable pixclass model: field 'head.n_in' is {head.n_in}, "
                            f"expected {info.n_features} (the features of '{meta['arch']}'); {DAMAGED}")
    return ImageClassifier(body, head)


def _check_tensors(path: Path, skeleton: ImageClassifier, header: Header) -> None:
    """Names, shapes and dtypes from the header against the model on the meta device."""
    mismatch = state_mismatch(skeleton, {k: shape for k, (_, shape) in header.items()})
    if mismatch:
        raise PixclassError(
            f"'{path}' does not match its own description ({mismatch}): the file was edited or damaged; export it again"
        )
    own = skeleton.state_dict()
    odd = [(k, dtype, _DTYPE_NAMES.get(own[k].dtype)) for k, (dtype, _) in header.items()
           if dtype != _DTYPE_NAMES.get(own[k].dtype)]
    if odd:
        name, dtype, expected = odd[0]
        raise PixclassError(
            f"'{path}' holds {len(odd)} tensor(s) of an unexpected type, e.g. '{name}' is {dtype}, expected "
            f"{expected}: quantised or converted weights are not loaded; export it again"
        )


def _check_forward(path: Path, model: ImageClassifier, meta: dict[str, Any]) -> bool:
    """Whether one `input_size` image runs through the model to `n_out` outputs.

    On the meta device this costs no memory and catches a head that does not fit its body (pooling
    a body that pools already, or the reverse) and an input size the arch cannot take. False when
    an operation has no meta implementation: the caller checks again on the real model.
    """
    size, n_out = meta["input_size"], meta["head"]["n_out"]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(1, 3, size, size, device=device))
    except NotImplementedError:
        if device.type == "meta":
            return False
        reason = "an operation is not implemented"
    except Exception as err:
        reason = _first_line(err)
    else:
        if tuple(out.shape) == (1, n_out):
            return True
        reason = f"output of shape {tuple(out.shape)}"
    finally:
        model.train(was_training)
    raise PixclassError(f"'{path}' describes a model that cannot run: '{meta['arch']}' with its head does not "
                        f"map {size}-px images to {n_out} outputs ({reason}); {DAMAGED}")


def _check_finite(path: Path, state: dict[str, torch.Tensor]) -> None:
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise PixclassError(
            f"'{path}' holds NaN or infinite weights in {len(bad)} tensor(s), e.g. '{bad[0]}'; {DAMAGED}"
        )


def _first_line(err: BaseException, limit: int = 100) -> str:
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def export_learner(learn: Any, path: Path, thresholds: Sequence[float] | None = None) -> Path:
    """Bundle a trained Learner: weights plus what prediction needs to preprocess and decode.

    `thresholds`: a multi-label model's per-tag thresholds (`Interpretation.tune_thresholds`);
    without them every tag uses the learner's `thresh`."""
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
        "resize": data.resize,
        "mean": list(data.mean),
        "std": list(data.std),
        "pixclass_version": pixclass.__version__,
        "weights_source": info.weights_source,
        "training": {"epochs": len(rows), "final": rows[-1] if rows else None,
                     "n_train": len(data.train_paths), "n_valid": len(data.valid_paths)},
    }
    if thresholds is not None:
        meta["thresholds"] = [float(t) for t in thresholds]
    return save_bundle(path, learn.model, meta)
