"""What a model file says about itself, read without torch: `read_model_meta` and `pixclass info`.

Owns: reading the JSON description of a `.pixclass` bundle (from its safetensors header, no tensor
data) or of an `.onnx` file written by `pixclass export RUN --onnx` (its `pixclass` metadata
property), validated by `bundle_meta`, and rendering it as the lines `pixclass info` prints.
`bundle.py` reads its header through `read_bundle_header` here, so both accept the same files.
Nothing here imports torch: `pixclass info` answers in a fraction of a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixclass.data.resize import RESIZE_METHODS
from pixclass.errors import PixclassError
from pixclass.export.bundle_meta import decode_meta, resize_method

META_KEY = "pixclass"  # the metadata key holding the JSON description, in both kinds of file
ONNX_SUFFIX = ".onnx"
MAX_CLASSES_SHOWN = 20  # `info` lists this many class names, then "… and N more"

Header = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (safetensors dtype, shape)


def read_model_meta(path: str | Path, check_arch: bool = False) -> dict[str, Any]:
    """The validated JSON description of a `.pixclass` bundle or an exported `.onnx` file.

    Reads only the file's header (bundle) or its metadata (ONNX): no weights are loaded, torch is
    not imported. `check_arch`: also ask timm whether it can build a bundle's arch (imports torch;
    loading a bundle always does); an ONNX file carries its graph, so its arch is informational.

    Raises:
        PixclassError: the file is missing, not a pixclass model, or its description is invalid.
    """
    path = Path(path)
    if is_onnx_file(path):
        from pixclass.export.onnx_runtime import read_onnx_meta  # the same checks a load makes

        return read_onnx_meta(path)
    return read_bundle_header(path, check_arch)[0]


def is_onnx_file(path: Path) -> bool:
    """An ONNX file by its name (`.onnx`, `.pixclass`), else by content: a safetensors bundle starts
    with an 8-byte header length and `{`, an ONNX protobuf with field 1 (`ir_version`)."""
    if path.suffix.lower() in (ONNX_SUFFIX, ".pixclass"):
        return path.suffix.lower() == ONNX_SUFFIX
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False  # the bundle reader says what is wrong with the path
    return len(head) == 9 and head[8:9] != b"{" and head[:1] == b"\x08"


def read_bundle_header(path: Path, check_arch: bool = True) -> tuple[dict[str, Any], Header]:
    """A bundle's validated description and its tensors' dtypes and shapes; no tensor data is read.

    `check_arch`: as for `bundle_meta.validate_meta` (True imports timm, so torch)."""
    from safetensors import safe_open

    if not path.is_file():
        raise PixclassError(f"model file '{path}' does not exist")
    with safetensors_errors(
        f"'{path}' is not a pixclass model (not a safetensors file); export one with 'pixclass export RUN'"
    ):
        with safe_open(str(path), framework="numpy") as f:  # "numpy": the header alone, without torch
            raw = (f.metadata() or {}).get(META_KEY)
            header = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
    if raw is None:
        raise PixclassError(f"'{path}' is a safetensors file but not a pixclass model (no 'pixclass' metadata)")
    return decode_meta(raw, path, check_arch=check_arch), header


@contextmanager
def safetensors_errors(message: str) -> Iterator[None]:
    """Any failure of the safetensors library inside becomes one `PixclassError(message)`."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException:  # SafetensorError, OSError, and a Rust panic (pyo3's PanicException is a BaseException)
        raise PixclassError(message) from None


def info_lines(meta: dict[str, Any], path: str | Path) -> list[str]:
    """What `pixclass info` prints about a model file: one `name: value` line per fact."""
    path = Path(path)
    classes, task = meta["classes"], meta["task"]
    kind = "ONNX model" if is_onnx_file(path) else "pixclass bundle"
    lines = [
        f"file: {printable(str(path))} ({kind}, format {meta['format_version']}, {_size(path.stat().st_size)})",
        f"arch: {meta['arch']}",
        f"task: {_TASKS.get(task, task)}",
    ]
    if task == "regression":
        y_range = meta["head"].get("y_range")
        lines.append("output: one number" + (f" in [{y_range[0]:g}, {y_range[1]:g}]" if y_range else ""))
    else:
        lines.append(f"classes: {len(classes)}: {_class_list(classes)}")
    if task == "multi":
        if "thresholds" in meta:
            lo, hi = min(meta["thresholds"]), max(meta["thresholds"])
            lines.append(f"thresholds: one per tag, tuned, {lo:g} to {hi:g} (a tag is predicted above its own)")
        else:
            lines.append(f"threshold: {meta['threshold']:g} (a tag is predicted above this probability)")
    lines += [
        f"input: {meta['input_size']}x{meta['input_size']} px, resize {_resize(meta)}",
        f"normalization: mean {_floats(meta['mean'])}, std {_floats(meta['std'])}",
    ]
    training = meta.get("training")
    if isinstance(training, dict):
        lines.append(f"training: {_training(training)}")
        final = training.get("final")
        if isinstance(final, dict) and final:
            lines.append(f"final epoch: {_metrics(final)}")
    if "weights_source" in meta:
        lines.append(f"weights: {meta['weights_source']}")
    lines.append(f"pixclass version: {meta.get('pixclass_version', 'unknown')}")
    return lines


def _resize(meta: dict[str, Any]) -> str:
    method = resize_method(meta)
    return f"{method}: {RESIZE_METHODS[method]}"


_TASKS = {"single": "single-label classification", "multi": "multi-label classification",
          "regression": "regression"}


def _class_list(classes: list[str]) -> str:
    shown = ", ".join(classes[:MAX_CLASSES_SHOWN])
    rest = len(classes) - MAX_CLASSES_SHOWN
    return shown + (f", … and {rest} more (--json lists all)" if rest > 0 else "")


def _training(training: dict[str, Any]) -> str:
    parts = []
    for key, name in (("epochs", "epochs"), ("n_train", "training images"), ("n_valid", "validation images")):
        if key in training:
            parts.append(f"{_value(training[key])} {name}")
    return ", ".join(parts) or "no summary"


def _metrics(row: dict[str, Any]) -> str:
    return ", ".join(f"{printable(str(k))} {_value(v)}" for k, v in row.items())


def _value(v: Any) -> str:
    """A JSON value from the informational part of a description, as short one-line text."""
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (int, str)) or v is None:
        return printable(str(v))[:80]
    return printable(json.dumps(v))[:80]


def _floats(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def printable(text: str | Path) -> str:
    """`text` (a path, a name) for one line of output: control characters (a newline in a file name)
    escaped as `\\n`."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))
