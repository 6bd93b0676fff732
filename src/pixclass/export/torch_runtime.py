"""The torch backend of the predictor: a loaded `ImageClassifier` run in fp32.

Owns running a normalized NCHW float32 batch through the model and returning its raw outputs
(logits, or the regression value) as a numpy array. Always fp32, whatever the machine: the
metrics a run reports are computed in fp32 (`train/features.py`, `Learner.get_preds`), so the
exported model reproduces them (same argmax on every image) on any CPU or GPU.
"""

from __future__ import annotations

import numpy as np
import torch


class TorchRuntime:
    """`run(batch) -> outputs` for a torch model on `device`."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device):
        # channels_last: measured 2x faster for efficientnet_lite0 on a 2-core CPU (and what
        # cuDNN's tensor-core kernels want); it only reorders 4-D weights, so any arch is safe.
        self.model = model.eval().to(device, memory_format=torch.channels_last)
        self.device = device

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, memory_format=torch.channels_last)
        return self.model(x).float().cpu().numpy()
