"""Labels → targets: the task (single-label, multi-label, regression) and its class vocabulary.

Owns: inferring the task from raw labels, the sorted and stable class list, encoding labels to
tensors-to-be (class index, multi-hot vector, float) and decoding them back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pixclass.errors import PixclassError

TASKS = ("single", "multi", "regression")


@dataclass
class LabelSpace:
    """What a model predicts: the task and, for classification, the sorted class names."""

    task: str
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise PixclassError(f"unknown task '{self.task}': expected one of {', '.join(TASKS)}")
        self._index = {c: i for i, c in enumerate(self.classes)}

    @property
    def n_out(self) -> int:
        """Number of model outputs: one per class, or one for regression."""
        return 1 if self.task == "regression" else len(self.classes)

    def encode(self, label: Any) -> Any:
        """A raw label → an int (single), a list of 0/1 floats (multi) or a float (regression)."""
        if self.task == "regression":
            return float(label)
        if self.task == "multi":
            vec = [0.0] * len(self.classes)
            for tag in label:
                vec[self._lookup(tag)] = 1.0
            return vec
        return self._lookup(label)

    def _lookup(self, label: Any) -> int:
        try:
            return self._index[str(label)]
        except KeyError:
            raise PixclassError(
                f"label '{label}' is not one of the {len(self.classes)} known classes "
                f"({', '.join(self.classes[:8])}{'…' if len(self.classes) > 8 else ''})"
            ) from None

    def to_dict(self) -> dict:
        return {"task": self.task, "classes": list(self.classes)}


def split_labels(raw: Sequence[Any], label_delim: str | None) -> list[Any]:
    """Split multi-label strings on `label_delim` ("haze primary" → ["haze", "primary"])."""
    if label_delim is None:
        return list(raw)
    out = []
    for value in raw:
        if isinstance(value, (list, tuple)):
            out.append([str(v) for v in value])
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            out.append([])
        else:
            out.append([t for t in str(value).split(label_delim) if t])
    return out


def infer_space(labels: Sequence[Any], task: str | None = None) -> LabelSpace:
    """Choose the task and class list from the labels themselves.

    Lists of tags mean multi-label; float labels (non-integral numbers) mean regression;
    anything else is single-label classification with classes sorted as strings
    (numerically when they are all integers, so "2" comes before "10").
    """
    if not labels:
        raise PixclassError("no labelled images found: check the folder, file names or CSV")
    if task is None:
        if all(isinstance(lab, (list, tuple)) for lab in labels):
            task = "multi"
        elif all(_is_float_label(lab) for lab in labels):
            task = "regression"
        else:
            task = "single"
    if task == "regression":
        bad = [lab for lab in labels if not _is_number(lab)]
        if bad:
            raise PixclassError(f"regression labels must be numbers; got '{bad[0]}'")
        return LabelSpace("regression")
    if task == "multi":
        names = {str(t) for lab in labels for t in lab}
    else:
        names = {str(lab) for lab in labels}
    return LabelSpace(task, _sorted_classes(names))


def class_counts(space: LabelSpace, labels: Sequence[Any]) -> dict[str, int]:
    """How many items carry each class (for multi-label: each tag)."""
    if space.task == "regression":
        return {}
    counter: Counter = Counter()
    for lab in labels:
        counter.update(str(t) for t in (lab if space.task == "multi" else [lab]))
    return {c: counter.get(c, 0) for c in space.classes}


def _sorted_classes(names: set[str]) -> list[str]:
    if all(_is_int_string(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _is_int_string(s: str) -> bool:
    return s.lstrip("-").isdigit()


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _is_float_label(value: Any) -> bool:
    # Python/numpy floats with a fractional part somewhere mean regression; ints stay classes.
    return isinstance(value, float) or type(value).__name__.startswith("float")
