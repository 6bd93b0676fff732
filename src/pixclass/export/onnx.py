"""Export a model to one standalone ONNX file: the graph, its weights and the bundle's JSON description.

Owns `onnx_bytes` (an eval-mode fp32 graph: input "image" float32 (N, 3, S, S), output "logits"
(N, n_out), dynamic batch; the description a `.pixclass` bundle holds, schema `bundle_meta`,
stored under the metadata property `pixclass`), `save_onnx` (validated, checked against torch,
atomic) and `export_onnx` (a run folder's or a bundle's `.pixclass` → `.onnx`). Imports torch;
running the file needs only `onnx_runtime`. Callers import this module lazily.

Export never takes a run's lock (export sits below train): `pixclass export` takes it.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixclass.errors import PixclassError
from pixclass.export.bundle_meta import FORMAT, FORMAT_VERSION, validate_meta
from pixclass.export.model_file import META_KEY, ONNX_SUFFIX
from pixclass.export.onnx_runtime import INPUT, OUTPUT, OnnxRuntime
from pixclass.files import atomic_write

BUNDLE_NAME = "model.pixclass"  # what `pixclass train` writes in a run folder
EXPORTERS = ("auto", "torchscript", "dynamo")  # torch's two ONNX exporters; see `onnx_bytes`
# Opset 18: run by onnxruntime >= 1.14 (our floor is 1.20) and written by both torch exporters.
OPSET = 18
# save_onnx compares ONNX Runtime with torch on one batch before writing. Measured max |diff|:
# 5e-7 (efficientnet_lite0, 224 px), 2e-9 (timm's test_efficientnet); this bound only catches a
# wrong graph, never float noise.
CHECK_TOLERANCE = 1e-3


def onnx_bytes(model: torch.nn.Module, meta: dict[str, Any], exporter: str = "auto") -> bytes:
    """`model` as a serialized ONNX model carrying `meta` (a bundle description) as metadata.

    The graph is the eval-mode fp32 forward pass; `model` itself is left as it was (mode, dtype).

    Args:
        model: the network (an `ImageClassifier`, or any module mapping (N, 3, S, S) to (N, n_out)).
        meta: its bundle description (`bundle_meta` schema; the format fields are set here).
        exporter: "auto" (below), "torchscript" or "dynamo". "auto" uses torch's TorchScript exporter,
            deprecated but fast (0.4-1.2 s for efficientnet_lite0 here), and the torch.export-based
            one (5.3-5.8 s; both give the same outputs within 1e-6) where the first is missing or fails.

    Raises:
        PixclassError: `meta` is not a valid description, or the model cannot be exported.
    """
    import onnx

    doc = _document(meta, f"the ONNX export of '{meta.get('arch')}'")
    size = doc["input_size"]
    fp32 = _fp32(model)
    x = torch.zeros(2, 3, size, size, device=next(fp32.parameters()).device)  # 2: a batch of 1 may become a constant
    with _eval_mode(fp32):
        proto = _export(fp32, x, doc["arch"], exporter)

    model_proto = onnx.load_model_from_string(proto)
    del model_proto.metadata_props[:]
    model_proto.metadata_props.add(key=META_KEY, value=json.dumps(doc))
    model_proto.doc_string = f"pixclass {doc['arch']} ({doc['task']}); description under metadata key '{META_KEY}'"
    return model_proto.SerializeToString()


def save_onnx(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model` and `meta` to `path` (.onnx) atomically, after checking the file as load would.

    The bytes are loaded by `OnnxRuntime.from_bytes` (the checks `load_model` makes) and their outputs
    compared with torch's on one batch: pixclass never writes an ONNX file it would refuse or that
    predicts differently.
    """
    path = Path(path)
    doc = _document(meta, path)
    data = onnx_bytes(model, doc)
    runtime = OnnxRuntime.from_bytes(data, doc, name=str(path))
    batch = np.random.default_rng(0).standard_normal((2, 3, doc["input_size"], doc["input_size"])).astype(np.float32)
    expected = _torch_outputs(model, batch)
    got = runtime.run(batch)
    diff = float(np.abs(got - expected).max())
    if not diff <= CHECK_TOLERANCE * max(1.0, float(np.abs(expected).max())):
        raise PixclassError(f"'{path}' not written: ONNX Runtime's outputs differ from torch's by {diff:.2g} "
                            f"for '{doc['arch']}'; use the .pixclass bundle (runtime='torch')")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def export_onnx(src: str | Path, out: str | Path | None = None) -> Path:
    """Convert a bundle to ONNX: `src` is a run folder (its `model.pixclass`) or a `.pixclass` file.

    Writes `out`, by default next to the bundle with the suffix `.onnx` (`RUN/model.onnx`). Take the
    run's lock around this call when `src` is a run folder (as `pixclass export` does).
    """
    from pixclass.export.bundle import load_bundle

    src = Path(src)
    bundle = src / BUNDLE_NAME if src.is_dir() else src
    if src.is_dir() and not bundle.is_file():
        raise PixclassError(f"'{src}' has no {BUNDLE_NAME} to convert: run 'pixclass export {src}' first")
    target = Path(out) if out is not None else bundle.with_suffix(ONNX_SUFFIX)
    if target.suffix.lower() != ONNX_SUFFIX:
        raise PixclassError(f"the ONNX file's name must end in {ONNX_SUFFIX} (so load_model knows it); got '{target}'")
    if bundle.suffix.lower() == ONNX_SUFFIX:
        raise PixclassError(f"'{bundle}' is already an ONNX file: convert a .pixclass bundle or a run folder")
    model, meta = load_bundle(bundle)
    return save_onnx(target, model, meta)


def _document(meta: dict[str, Any], where: str | Path) -> dict[str, Any]:
    """The description as a bundle stores it (format fields first, at this pixclass's version), validated."""
    rest = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
    doc = json.loads(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **rest}))
    return validate_meta(doc, where, next_step="not exported, as pixclass could not load it")


def _export(model: torch.nn.Module, x: torch.Tensor, arch: str, exporter: str) -> bytes:
    if exporter not in EXPORTERS:
        raise PixclassError(f"exporter must be one of {', '.join(EXPORTERS)}; got '{exporter}'")
    if exporter != "dynamo":
        try:
            return _export_torchscript(model, x)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as err:  # deprecated: missing in a future torch, or unable to trace this model
            if exporter == "torchscript":
                raise _cannot_export(arch, err) from None
    try:
        return _export_dynamo(model, x)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:
        raise _cannot_export(arch, err) from None


def _cannot_export(arch: str, err: Exception) -> PixclassError:
    lines = str(err).strip().splitlines()
    reason = f"{type(err).__name__}: {lines[0][:120]}" if lines else type(err).__name__
    return PixclassError(f"cannot export '{arch}' to ONNX ({reason}); predict with the .pixclass bundle "
                         "(runtime='torch')")


def _export_torchscript(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # "legacy TorchScript-based ONNX export": we fall back when it goes
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET,
                          do_constant_folding=True)
    return buf.getvalue()


def _export_dynamo(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(model, (x,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                dynamic_shapes=({0: batch},), opset_version=OPSET, verbose=False)
    return program.model_proto.SerializeToString()


def _fp32(model: torch.nn.Module) -> torch.nn.Module:
    """`model` if all its parameters are float32, else a float32 copy (the argument is never changed)."""
    return model if all(p.dtype == torch.float32 for p in model.parameters()) else copy.deepcopy(model).float()


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """`model` in eval mode inside; afterwards each module's own mode back (a frozen body's BatchNorm
    may be in eval mode while the rest trains)."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield
    finally:
        for m, training in modes.items():
            m.training = training


@torch.inference_mode()
def _torch_outputs(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    fp32 = _fp32(model)
    with _eval_mode(fp32):
        return fp32(torch.from_numpy(batch).to(next(fp32.parameters()).device)).cpu().numpy()
