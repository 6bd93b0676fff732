"""The new head put on a pretrained body: fastai's design, as plain torch modules.

Owns: concat (average + max) pooling and the BatchNorm/Dropout/Linear stack that maps pooled
body features to the task's outputs. `HeadConfig` is stored in exported bundles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class HeadConfig:
    """The head's shape.

    Args:
        n_in: channels of the body's feature map.
        n_out: outputs (classes, or 1 for regression).
        hidden: width of the hidden layer (0: a single linear layer after pooling).
        ps: dropout before the final layer; half of it before the hidden layer.
        concat_pool: average and max pooling concatenated (else average only).
        pool: False when the body already returns pooled (B, C) features (e.g. transformers).
        y_range: squash regression outputs into (lo, hi) with a scaled sigmoid.
    """

    n_in: int
    n_out: int
    hidden: int = 512
    ps: float = 0.5
    concat_pool: bool = True
    pool: bool = True
    y_range: tuple[float, float] | None = None

    @property
    def n_pooled(self) -> int:
        return self.n_in * (2 if self.concat_pool and self.pool else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        d = dict(d)
        if d.get("y_range") is not None:
            d["y_range"] = tuple(d["y_range"])
        return cls(**d)


class ConcatPool(nn.Module):
    """(B, C, H, W) → (B, 2C): average and max pooling side by side (or (B, C) average only)."""

    def __init__(self, concat: bool = True):
        super().__init__()
        self.concat = concat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3))
        return torch.cat([avg, x.amax(dim=(2, 3))], dim=1) if self.concat else avg


class SigmoidRange(nn.Module):
    """Maps outputs into (lo, hi): lo + (hi - lo) · sigmoid(x)."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(x)


class Head(nn.Module):
    """`pool` (feature map → vector) then `mlp` (vector → outputs).

    Split in two so that a frozen stage can train `mlp` on cached pooled features.
    """

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.pool = ConcatPool(cfg.concat_pool) if cfg.pool else nn.Identity()
        n = cfg.n_pooled
        layers: list[nn.Module] = [nn.BatchNorm1d(n), nn.Dropout(cfg.ps / 2)]
        if cfg.hidden:
            layers += [nn.Linear(n, cfg.hidden, bias=False), nn.ReLU(inplace=True),
                       nn.BatchNorm1d(cfg.hidden), nn.Dropout(cfg.ps)]
            n = cfg.hidden
        layers.append(nn.Linear(n, cfg.n_out))  # a bias lets the head learn class priors
        if cfg.y_range is not None:
            layers.append(SigmoidRange(*cfg.y_range))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pool(x))
