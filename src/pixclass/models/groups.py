"""Layer groups of a body + head model: freezing and discriminative learning rates.

Owns: splitting a timm body into ordered groups (early layers, late layers) plus the head, and
`freeze_to(n)`, which stops gradients for the first n groups while their BatchNorm layers stay
trainable (as fastai does: a frozen body still adapts its normalization to the new data).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
# Containers whose children are the natural units of a body (stages of a CNN, blocks of a ViT).
_STAGE_NAMES = ("blocks", "stages", "layers", "features")


def body_units(body: nn.Module) -> list[nn.Module]:
    """The body's top-level modules in forward order, with stage containers expanded."""
    units: list[nn.Module] = []
    for name, child in body.named_children():
        if name in _STAGE_NAMES and isinstance(child, (nn.Sequential, nn.ModuleList)):
            units.extend(child.children())
        elif any(True for _ in child.parameters()):
            units.append(child)
    return units or [body]


def split_groups(body: nn.Module, head: nn.Module, n_body_groups: int = 2) -> list[list[nn.Module]]:
    """Body units cut into `n_body_groups` parts of about equal parameter count, then the head."""
    units = body_units(body)
    sizes = [sum(p.numel() for p in u.parameters()) for u in units]
    total = sum(sizes) or 1
    groups: list[list[nn.Module]] = [[] for _ in range(n_body_groups)]
    seen = 0
    for unit, size in zip(units, sizes):
        # Place each unit by where its middle falls in the cumulative parameter count.
        g = min(n_body_groups - 1, int((seen + size / 2) / total * n_body_groups))
        groups[g].append(unit)
        seen += size
    groups = [g for g in groups if g]
    return groups + [[head]]


def freeze_to(groups: Sequence[Sequence[nn.Module]], n: int, train_bn: bool = True) -> None:
    """Freeze groups[:n] and unfreeze the rest; negative n counts from the end like a slice."""
    n = n % len(groups) if n < 0 else min(n, len(groups))
    for i, group in enumerate(groups):
        for module in group:
            for m in module.modules():
                trainable = i >= n or (train_bn and isinstance(m, _BN))
                for p in m.parameters(recurse=False):
                    p.requires_grad_(trainable)


def param_groups(groups: Sequence[Sequence[nn.Module]]) -> list[list[nn.Parameter]]:
    """The parameters of each group (each parameter exactly once)."""
    seen: set[int] = set()
    out = []
    for group in groups:
        params = []
        for module in group:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        out.append(params)
    return out
