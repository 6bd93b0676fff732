"""The elpv solar-cell photos (PyPI `elpv-dataset`) as an `ImageData`, on the project's fixed split.

Two tasks: "type" (mono vs poly cells) and "defect" (4 defect-probability levels). The split
(`elpv_split.json`, 525 validation images stratified by type × defect, seed 42) indexes the
order of `elpv_dataset`'s labels file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixclass.errors import PixclassError

TASKS = ("type", "defect")
_DEFECT_NAMES = {0.0: "0-functional", 0.3333333333333333: "1-possibly", 0.6666666666666666: "2-likely",
                 1.0: "3-defective"}


def elpv_root() -> Path:
    """The folder holding `labels.csv` and `images/` inside the installed package."""
    try:
        import elpv_dataset
    except ImportError:
        raise PixclassError(
            "the demo dataset is not installed: pip install 'pixclass[demo]' (or elpv-dataset)"
        ) from None
    return Path(elpv_dataset.__file__).parent / "data"


def elpv_items(task: str = "type") -> tuple[list[Path], list[str]]:
    """All 2,624 image paths and their labels for `task`, in the dataset's own order."""
    if task not in TASKS:
        raise PixclassError(f"unknown elpv task '{task}': choose 'type' or 'defect'")
    root = elpv_root()
    paths, labels = [], []
    for line in (root / "labels.csv").read_text().splitlines():
        if not line.strip():
            continue
        rel, prob, kind = line.split()
        paths.append(root / rel)
        labels.append(kind if task == "type" else _defect_name(float(prob)))
    return paths, labels


def _defect_name(prob: float) -> str:
    for value, name in _DEFECT_NAMES.items():
        if abs(prob - value) < 1e-6:
            return name
    raise PixclassError(f"unexpected elpv defect probability {prob}")


def elpv_split() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "elpv_split.json").read_text())


def elpv_data(task: str = "type", **kwargs: Any):
    """`ImageData` of the elpv task on the fixed split (kwargs: size, bs, augment, ...)."""
    from pixclass.data.loaders import ImageData

    paths, labels = elpv_items(task)
    split = elpv_split()
    if split["n"] != len(paths):
        raise PixclassError(f"the elpv package has {len(paths)} images but the split expects {split['n']}")
    return ImageData.from_lists(paths, labels, valid_idx=split["valid_idx"], **kwargs)
