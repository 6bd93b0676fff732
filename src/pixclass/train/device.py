"""Device and precision choices: cuda, mps or cpu; autocast where the hardware does it natively.

Owns: picking the device, deciding whether bf16/fp16 autocast pays off, and the autocast context.

The precision policy, in one place:
- training steps (and lr_find, and the frozen stage's cached *training* features) use autocast
  where the hardware does it natively: bf16 on a CPU with avx512_bf16/AMX, bf16 or fp16 on CUDA,
  fp32 elsewhere; `PIXCLASS_AMP` forces a path so any machine can test it;
- everything that is measured or delivered is fp32: validation, the cached validation and test
  features, `get_preds`, `tta`, regression features, the exported model and prediction (torch or
  ONNX Runtime). So the metrics a run reports are what its exported model gives on the same images
  (same argmax; probabilities within 1e-5), whatever CPU or GPU trained it.
"""

from __future__ import annotations

import contextlib
import os

import torch

from pixclass.errors import PixclassError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """An explicit device, else cuda, else mps, else cpu."""
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise PixclassError("device 'cuda' was asked for but no CUDA GPU is available; use device='cpu'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# Environment override of amp="auto" ("bf16", "fp16", "fp32", "auto"): forces a precision path,
# e.g. the bf16 one on a CPU without native bf16 (emulated: slow but correct), to test it anywhere.
AMP_ENV = "PIXCLASS_AMP"


def resolve_amp(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training steps, or None for fp32.

    "auto": fp16 on CUDA (bf16 where supported), bf16 on a CPU with native bf16 instructions
    (AVX512-BF16/AMX; emulated bf16 is slower than fp32), nothing elsewhere; the environment
    variable PIXCLASS_AMP overrides it.
    """
    if amp in ("auto", True) and os.environ.get(AMP_ENV, "auto") != "auto":
        amp = os.environ[AMP_ENV]
    if amp in (None, False, "none", "fp32"):
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        if device.type != "cuda":
            raise PixclassError("fp16 autocast needs a CUDA device; use amp='bf16' or amp=None")
        return torch.float16
    if amp not in ("auto", True):
        raise PixclassError(f"amp must be 'auto', 'bf16', 'fp16' or None; got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None):
    """`torch.autocast` for `dtype`, or a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
