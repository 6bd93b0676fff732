"""pixclass: from "I want a classifier for these pictures" to a model served over HTTP.

    from pixclass import ImageData, Learner, load_model

The public API is re-exported here lazily: `import pixclass` does not import torch or timm
until a name that needs them is used, so the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ImageData": "pixclass.data.loaders",
    "Augment": "pixclass.data.augment",
    "open_image": "pixclass.data.images",
    "Learner": "pixclass.train.learner",
    "LRFind": "pixclass.train.schedule",
    "load_model": "pixclass.export.predictor",
    "Predictor": "pixclass.export.predictor",
    "Prediction": "pixclass.export.predictor",
    "PixclassError": "pixclass.errors",
    "download_images": "pixclass.collect",
    "fetch_images": "pixclass.collect",
    "verify_images": "pixclass.collect",
    "keep_freed_memory": "pixclass.malloc",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pixclass' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
