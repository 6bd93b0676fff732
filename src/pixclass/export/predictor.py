"""Load an exported model (`.pixclass` or `.onnx`) on any machine and predict images.

Owns: `load_model` (which runtime runs the model), `Predictor` (`predict` one image,
`predict_batch` in one forward pass, `predict_many` over files with decoding overlapped, top-k,
test-time augmentation) and `Prediction`. Importing this module never imports torch: a `.onnx`
file runs on ONNX Runtime alone; torch is imported only to load a `.pixclass` bundle.

Precision: prediction is fp32 on every machine (see `torch_runtime`), so the exported model
reproduces the metrics its run reported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from pixclass.data.images import open_image
from pixclass.data.preprocess import eval_array
from pixclass.errors import ImageReadError, PixclassError
from pixclass.export.bundle_meta import resize_method
from pixclass.export.model_file import is_onnx_file

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray
RUNTIMES = ("auto", "onnxruntime", "torch")


class Runtime(Protocol):
    """What runs the network: a normalized (N, 3, S, S) float32 batch → (N, n_out) raw outputs."""

    name: str

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class Prediction:
    """One image's prediction.

    `label` is the class name (multi-label: the list of tags over the threshold; regression:
    the value), `index` the class index (multi-label: the tag indices), `probs` per class.
    """

    label: Any
    index: Any
    probs: dict[str, float]

    @property
    def prob(self) -> float:
        """Confidence of the prediction: the top class probability (multi-label: the lowest
        probability among predicted tags; regression: nan)."""
        if isinstance(self.index, int):
            return max(self.probs.values())
        if isinstance(self.index, list) and self.index:
            return min(self.probs[t] for t in self.label)
        return float("nan")

    def top(self, k: int) -> list[tuple[str, float]]:
        """The `k` most probable classes, highest first (regression: empty)."""
        return sorted(self.probs.items(), key=lambda kv: -kv[1])[:max(0, k)]

    def to_dict(self, top_k: int | None = None) -> dict[str, Any]:
        """JSON-able: label, index, prob (None for regression) and the top-k classes."""
        prob = self.prob
        top = self.top(top_k if top_k is not None else len(self.probs))
        return {"label": self.label, "index": self.index, "prob": None if math.isnan(prob) else prob,
                "top": [{"label": c, "prob": p} for c, p in top]}


class Predictor:
    """A loaded model: `predict(img)`, `predict_batch(imgs)`, `predict_many(paths)`.

    Args:
        runtime: what runs the network (`Runtime`).
        meta: the model's description (classes, task, threshold, input size, resize method,
            normalization).
    """

    def __init__(self, runtime: Runtime, meta: dict[str, Any]):
        self.runtime_backend = runtime
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.task: str = meta["task"]
        self.threshold: float = float(meta.get("threshold", 0.5))
        # One per tag: the model's tuned thresholds if it carries them, else `threshold` for all.
        self.thresholds: list[float] = [float(t) for t in meta.get("thresholds", [self.threshold] * len(self.classes))]
        self.size: int = int(meta["input_size"])
        self.resize: str = resize_method(meta)  # as the model was trained: "crop", "pad" or "squish"

    @property
    def runtime(self) -> str:
        return self.runtime_backend.name

    def __repr__(self) -> str:
        return f"Predictor({self.meta['arch']}, {self.task}, {len(self.classes)} classes, {self.runtime})"

    # -- one image, a batch -------------------------------------------------------------------
    def predict(self, img: ImageSource, tta: bool = False) -> Prediction:
        """Predict one image: a path, bytes, a PIL image or an array (H×W, H×W×3, H×W×4)."""
        return self.predict_batch([img], tta=tta)[0]

    def predict_batch(self, imgs: Sequence[ImageSource], tta: bool = False) -> list[Prediction]:
        """Predict several images in one forward pass.

        Raises:
            ImageReadError: an image cannot be read (the first one, named).
        """
        return self.predict_arrays([self.array(i) for i in imgs], tta=tta)

    def array(self, img: ImageSource, name: str | None = None) -> np.ndarray:
        """The model input of one image: (3, S, S) float32, preprocessed as in training.

        `name` is what an error calls a bytes or array source (e.g. an upload's file name).
        """
        return eval_array(open_image(img, min_size=self.size, name=name), self.size, self.meta["mean"],
                          self.meta["std"], self.resize)

    def predict_arrays(self, arrays: Sequence[np.ndarray], tta: bool = False) -> list[Prediction]:
        """Predict model inputs made by `array()` in one forward pass (a server decodes and
        preprocesses in its own threads, then batches these)."""
        if not len(arrays):
            return []
        return self._decode_rows(self._outputs(np.stack(arrays), tta))

    # -- many files ---------------------------------------------------------------------------
    def predict_many(self, paths: Sequence[str | os.PathLike], bs: int | None = None, tta: bool = False
                     ) -> Iterator[tuple[Path, Prediction | None, str | None]]:
        """Yield `(path, prediction, None)` or `(path, None, reason)` for each file, in order.

        Args:
            paths: image files.
            bs: images per forward pass (default `default_batch_size()`).
            tta: average over the image and its mirror image.
        """
        chunks = list(_chunks(list(paths), bs or self.default_batch_size()))
        with ThreadPoolExecutor(max_workers=1) as pool:  # decodes the next batch meanwhile
            pending = pool.submit(self._load_chunk, chunks[0]) if chunks else None
            for k, chunk in enumerate(chunks):
                arrays, errors = pending.result()
                if k + 1 < len(chunks):
                    pending = pool.submit(self._load_chunk, chunks[k + 1])
                rows = iter(self._decode_rows(self._outputs(np.stack(arrays), tta)) if arrays else ())
                for i, p in enumerate(chunk):  # in input order, unreadable files in their place
                    if i in errors:
                        yield Path(p), None, errors[i]
                    else:
                        yield Path(p), next(rows), None

    def default_batch_size(self) -> int:
        # Small batches stay in a CPU's caches: lite0 on 2 cores, ONNX Runtime, ran at 250 img/s
        # with 8 images a batch, 213 with 16, 205 with 32 (torch fp32: 61, 44, 38); a GPU wants
        # big batches.
        return 64 if getattr(self.runtime_backend, "device", None) is not None and \
            str(self.runtime_backend.device).startswith("cuda") else 8

    def _load_chunk(self, chunk: list) -> tuple[list[np.ndarray], dict[int, str]]:
        arrays, errors = [], {}
        for i, p in enumerate(chunk):
            try:
                arrays.append(self.array(p))
            except ImageReadError as err:
                errors[i] = err.reason
        return arrays, errors

    # -- outputs → predictions ----------------------------------------------------------------
    def _outputs(self, batch: np.ndarray, tta: bool = False) -> np.ndarray:
        """Probabilities (single: softmax, multi: sigmoid) or values (regression) per row."""
        out = self._activate(self.runtime_backend.run(batch))
        if tta:  # the mirror image, averaged: flips are in every augmentation preset but "none"
            out = (out + self._activate(self.runtime_backend.run(np.ascontiguousarray(batch[..., ::-1])))) / 2
        return out

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        if self.task == "single":
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        return 1 / (1 + np.exp(-logits)) if self.task == "multi" else logits

    def _decode_rows(self, rows: np.ndarray) -> list[Prediction]:
        return [self._decode(row) for row in rows]

    def _decode(self, row: np.ndarray) -> Prediction:
        if self.task == "regression":
            return Prediction(label=float(row[0]), index=None, probs={})
        probs = {c: float(p) for c, p in zip(self.classes, row)}
        if self.task == "multi":
            idx = [i for i, (p, t) in enumerate(zip(row.tolist(), self.thresholds)) if p > t]
            return Prediction(label=[self.classes[i] for i in idx], index=idx, probs=probs)
        i = int(row.argmax())
        return Prediction(label=self.classes[i], index=i, probs=probs)

    # -- serving ------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Run one image through the model: first-call costs (kernel choice, memory arenas) are
        paid here, not by the first user."""
        self.runtime_backend.run(np.zeros((1, 3, self.size, self.size), dtype=np.float32))

    def info(self) -> dict[str, Any]:
        """JSON-able description: arch, task, classes, input size, threshold, runtime, training."""
        keys = ("arch", "task", "classes", "input_size", "resize", "mean", "std", "threshold", "thresholds",
                "pixclass_version", "weights_source", "training")
        return {**{k: self.meta[k] for k in keys if k in self.meta}, "resize": self.resize, "runtime": self.runtime}


def load_model(path: str | os.PathLike, device: str | None = None, runtime: str = "auto",
               threads: int | None = None) -> Predictor:
    """Load a `.pixclass` bundle or a `.onnx` export for prediction; nothing in either can run code.

    Args:
        path: the model file.
        device: "cpu" (default) or "cuda".
        runtime: "auto" (ONNX Runtime when it is installed, else torch), "onnxruntime" or "torch".
            A `.onnx` file always runs on ONNX Runtime, without importing torch.
        threads: compute threads (default: ONNX Runtime's choice, one per core).
    """
    if runtime not in RUNTIMES:
        raise PixclassError(f"runtime must be one of {', '.join(RUNTIMES)}; got '{runtime}'")
    path = Path(path)
    if is_onnx_file(path):
        if runtime == "torch":
            raise PixclassError(f"'{path}' is an ONNX file: it runs on ONNX Runtime; load the .pixclass "
                                f"bundle for runtime='torch'")
        from pixclass.export.onnx_runtime import OnnxRuntime

        backend, meta = OnnxRuntime.from_file(path, threads=threads, device=device)
    else:
        backend, meta = _load_bundle(path, device, runtime, threads)
    predictor = Predictor(backend, meta)
    predictor.warm_up()
    return predictor


def _load_bundle(path: Path, device: str | None, runtime: str, threads: int | None) -> tuple[Runtime, dict]:
    import torch

    from pixclass.export.bundle import load_bundle

    model, meta = load_bundle(path, "cpu")
    dev = torch.device(device or "cpu")
    if runtime == "torch" or (runtime == "auto" and (dev.type != "cpu" or not _has_onnxruntime())):
        from pixclass.export.torch_runtime import TorchRuntime

        if threads:
            torch.set_num_threads(threads)
        return TorchRuntime(model, dev), meta
    # ONNX Runtime fp32 ran efficientnet_lite0 at 2.5 ms per image against torch's 16.5 ms (fp32,
    # channels_last) and 10 ms (bf16) on a 2-core CPU; converting at load takes 0.4 s.
    from pixclass.export.onnx import onnx_bytes
    from pixclass.export.onnx_runtime import OnnxRuntime

    return OnnxRuntime.from_bytes(onnx_bytes(model, meta), meta, threads=threads, device=device), meta


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
