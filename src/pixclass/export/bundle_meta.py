"""The schema of a bundle's JSON description: which fields a `.pixclass` file holds, their types and bounds.

Owns the format constants and `validate_meta(meta, path)`, run on every description before anything
is built from it: a crafted file cannot make the loader allocate a huge head, resize images to a huge
size, take a code path for an unknown task, or crash with a traceback. Each problem is one
`PixclassError` line naming the file, the field, what was expected and what to do.

Fields are checked from tables (field → checker); a checker returns None for a good value, else
what was expected ("an integer from 1 to 200000"). The tensors are checked in `bundle.py`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixclass.data.labels import TASKS
from pixclass.data.resize import RESIZE_METHODS
from pixclass.errors import PixclassError

FORMAT = "pixclass-bundle"
# 2: "resize" names a method of `data.resize.RESIZE_METHODS` ("crop", "pad", "squish"); a pixclass
# that reads only format 1 says "upgrade pixclass" instead of calling "pad" damaged. Format 1 files
# (and an ONNX conversion of one, which carries format 2) hold `RESIZE`, read as "crop".
FORMAT_VERSION = 2
RESIZE = "shorter-side-then-center-crop"  # format 1's only value: what "crop" does

# Bounds: generous for any real model, small enough that no description can exhaust memory by itself.
MAX_CLASSES = 200_000  # timm's largest pretrained label set has 115,217 classes
MAX_WIDTH = 65_536  # head.n_in and head.hidden; timm's widest body returns 10,444 features (regnety_2560)
# Square input side in pixels: timm's pretrained sizes span 106 (tinynet_e) to 1024 (SAM ViTs). At
# 1024 a decoded image is 12 MB as float32; the reported bug used 30000 (2.7 GB per image).
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 1024
# mean/std apply to pixels scaled to [0, 1]; timm's std values span 0.143..1.0. A std under 0.001
# would magnify inputs 1000-fold: no real normalization does that.
MIN_STD = 1e-3
MAX_TEXT = 1_000  # characters in a class name, an arch name or an informational string

Check = Callable[[Any], "str | None"]  # None when the value is good, else what was expected

DAMAGED = "the file was edited or damaged: export it again"  # the default next step


def validate_meta(meta: Any, path: str | Path, next_step: str = DAMAGED, check_arch: bool = True) -> dict[str, Any]:
    """`meta` (a decoded JSON description) if it is a well-formed pixclass bundle description.

    Args:
        meta: the decoded JSON document.
        path: the bundle, named in messages.
        next_step: what the user should do about a bad description (ends each message).
        check_arch: ask timm whether it knows `arch` (imports torch). False where the arch is only
            informational, e.g. an ONNX file, which carries its graph and runs without torch.

    Raises:
        PixclassError: one line naming `path`, the first bad field, what was expected and `next_step`.
    """
    try:
        _validate(meta, path, check_arch)
    except _Invalid as bad:
        raise PixclassError(f"'{path}' is not a usable pixclass model: {bad}; {next_step}") from None
    return meta


def _validate(meta: Any, path: str | Path, check_arch: bool) -> None:
    if not isinstance(meta, dict):
        raise _Invalid(f"its description is a JSON {_json_type(meta)}, expected an object")
    if meta.get("format") != FORMAT:
        raise PixclassError(
            f"'{path}' is not a pixclass bundle: its format is {_show(meta.get('format'))}, "
            f"expected \"{FORMAT}\"; this file was not exported by pixclass"
        )
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise PixclassError(
            f"'{path}' uses bundle format {version}; this pixclass reads up to {FORMAT_VERSION}: upgrade pixclass"
        )
    _check_fields(meta, REQUIRED if check_arch else {**REQUIRED, "arch": _name}, OPTIONAL, prefix="")
    _check_fields(meta["head"], HEAD, {}, prefix="head.")
    _check_consistency(meta)


def resize_method(meta: dict[str, Any]) -> str:
    """The resize method of a validated description: "crop", "pad" or "squish" (format 1's name
    `RESIZE` is "crop")."""
    return "crop" if meta["resize"] == RESIZE else meta["resize"]


def decode_meta(raw: str, path: str | Path, check_arch: bool = True) -> dict[str, Any]:
    """The validated description from the text of a bundle's `pixclass` metadata key (`check_arch`:
    as for `validate_meta`)."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, over-long integers, deep nesting
        reason = str(err).splitlines()[0][:80] if isinstance(err, ValueError) else "nested too deeply"
        raise PixclassError(
            f"'{path}' is not a usable pixclass model: its description is not valid JSON ({reason}); {DAMAGED}"
        ) from None
    return validate_meta(meta, path, check_arch=check_arch)


# -- checkers ------------------------------------------------------------------------------------

def _integer(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"an integer from {lo} to {hi}"
    return check


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(lo: float, hi: float, open_lo: bool = False, open_hi: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = (_is_number(v) and (lo < v if open_lo else lo <= v) and (v < hi if open_hi else v <= hi))
        return None if ok else f"a number in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}"
    return check


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if isinstance(v, str) and v in choices else "one of " + ", ".join(f'"{c}"' for c in choices)
    return check


def _text(v: Any) -> str | None:
    ok = isinstance(v, str) and len(v) <= MAX_TEXT and v.isprintable()
    return None if ok else f"a one-line string of at most {MAX_TEXT} characters"


def _name(v: Any) -> str | None:
    return _text(v) if v != "" else "a non-empty string"


def _object(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a JSON object"


def _floats(n: int, lo: float, hi: float) -> Check:
    element = _number(lo, hi)

    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and len(v) == n and all(element(x) is None for x in v)
        return None if ok else f"a list of {n} numbers in [{lo}, {hi}]"
    return check


def _y_range(v: Any) -> str | None:
    ok = v is None or (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)) and v[0] < v[1])
    return None if ok else "null or [lo, hi] with finite lo < hi"


def _arch(v: Any) -> str | None:
    import timm

    from pixclass.models.weights import canonical_arch

    if _name(v) is not None or not timm.is_model(canonical_arch(v)):
        return f"an architecture timm {timm.__version__} knows (see timm.list_models()); a newer timm may know it"
    return None


def _classes(v: Any) -> str | None:
    expected = f"a list of at most {MAX_CLASSES} distinct non-empty one-line strings"
    if not isinstance(v, list) or len(v) > MAX_CLASSES or any(_name(c) is not None for c in v):
        return expected
    return None if len(set(v)) == len(v) else expected + " (a class is repeated)"


# -- the schema ----------------------------------------------------------------------------------

REQUIRED: dict[str, Check] = {
    "format": _one_of(FORMAT),
    "format_version": _integer(1, FORMAT_VERSION),
    "arch": _arch,
    "head": _object,
    "task": _one_of(*TASKS),
    "classes": _classes,
    "threshold": _number(0, 1, open_lo=True, open_hi=True),
    "input_size": _integer(MIN_INPUT_SIZE, MAX_INPUT_SIZE),
    "resize": _one_of(*RESIZE_METHODS, RESIZE),
    "mean": _floats(3, 0.0, 1.0),
    "std": _floats(3, MIN_STD, 1.0),
}
def _tag_thresholds(v: Any) -> str | None:
    ok = isinstance(v, list) and 0 < len(v) <= MAX_CLASSES and all(_is_number(x) and 0 < x < 1 for x in v)
    return None if ok else "a list of numbers in (0, 1), one per class"


# Optional and used in decoding: a multi-label model's per-tag thresholds (tuned on validation by
# `Interpretation.tune_thresholds`); without it every tag uses `threshold`.
DECODING: dict[str, Check] = {"thresholds": _tag_thresholds}
# Informational: shown to people, never used to build or run the model.
OPTIONAL: dict[str, Check] = {**DECODING, "pixclass_version": _text, "weights_source": _text, "training": _object}
# Exactly the fields of `models.head.HeadConfig` (a test holds the two together).
HEAD: dict[str, Check] = {
    "n_in": _integer(1, MAX_WIDTH),
    "n_out": _integer(1, MAX_CLASSES),
    "hidden": _integer(0, MAX_WIDTH),  # 0: no hidden layer
    "ps": _number(0, 1),
    "concat_pool": _boolean,
    "pool": _boolean,
    "y_range": _y_range,
}


class _Invalid(Exception):
    """What is wrong with a description (becomes the middle of a PixclassError message)."""


def _check_fields(doc: dict, required: dict[str, Check], optional: dict[str, Check], prefix: str) -> None:
    for key in doc:
        if key not in required and key not in optional:
            raise _Invalid(f"unknown field {_show(prefix + str(key))} in its description")
    for key, check in required.items():
        if key not in doc:
            raise _Invalid(f"field '{prefix}{key}' is missing from its description")
        _check_field(prefix + key, doc[key], check)
    for key, check in optional.items():
        if key in doc:
            _check_field(prefix + key, doc[key], check)


def _check_field(field: str, value: Any, check: Check) -> None:
    expected = check(value)
    if expected is not None:
        raise _Invalid(f"field '{field}' is {_show(value)}, expected {expected}")


def _check_consistency(meta: dict) -> None:
    n_classes, n_out = len(meta["classes"]), meta["head"]["n_out"]
    if meta["task"] == "regression":
        if n_classes or n_out != 1:
            raise _Invalid(f"a regression model has 'classes' [] and 'head.n_out' 1, not {n_classes} "
                           f"classes and {n_out} outputs")
    elif n_classes == 0:
        raise _Invalid(f"field 'classes' is [], expected the names of a {meta['task']}-label model's classes")
    elif n_out != n_classes:
        raise _Invalid(f"field 'head.n_out' is {n_out}, expected {n_classes} (one output per class)")
    if "thresholds" in meta and (meta["task"] != "multi" or len(meta["thresholds"]) != n_classes):
        raise _Invalid(f"field 'thresholds' has {len(meta['thresholds'])} numbers for a {meta['task']}-label model "
                       f"with {n_classes} classes: only a multi-label model has them, one per class")


def _show(value: Any, limit: int = 40) -> str:
    """A short one-line rendering of a JSON value for a message."""
    try:
        text = json.dumps(value, ensure_ascii=True)  # escapes newlines: the message stays one line
    except (ValueError, RecursionError):
        text = "a deeply nested value"
    return text if len(text) <= limit else text[:limit] + "…"


def _json_type(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)
