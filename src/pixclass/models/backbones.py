"""Backbones by timm name and the body + head model built on them.

Owns: `create_body` (a timm model without its classifier, pretrained weights loaded),
`ImageClassifier` (body + head + layer groups) and the description needed to rebuild it from
a name (arch, head config, normalization, input size) — the bundle relies on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pixclass.errors import PixclassError
from pixclass.models.groups import freeze_to, param_groups, split_groups
from pixclass.models.head import Head, HeadConfig


@dataclass
class BodyInfo:
    """What the rest of the library needs to know about a body."""

    arch: str
    n_features: int
    pooled: bool  # True when the body already returns (B, C) features
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    weights_source: str = "random init"
    extra: dict[str, Any] = field(default_factory=dict)


def create_body(arch: str, pretrained: bool = True, weights: str | None = None) -> tuple[nn.Module, BodyInfo]:
    """A timm model by name, pretrained weights loaded, classifier removed.

    Args:
        arch: any timm architecture name (`timm.list_models()`), e.g. "efficientnet_lite0",
            "resnet34", "convnext_tiny".
        pretrained: load ImageNet weights (see `pixclass.models.weights` for where from).
        weights: an explicit weights file (safetensors or a torch state dict), used first.

    Called inside `with torch.device("meta"):` with pretrained=False it allocates no memory: the
    parameters and the pooled-output probe's input are meta tensors.
    """
    import timm

    from pixclass.models.weights import canonical_arch, pretrained_state_dict

    name = canonical_arch(arch)
    if not timm.is_model(name):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:6]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise PixclassError(f"unknown architecture '{arch}'{hint} (see timm.list_models())")
    model = timm.create_model(name, pretrained=False)
    source = "random init"
    if pretrained or weights:
        state, source = pretrained_state_dict(name, weights)
        _load_state(model, state, name, source)
    model.reset_classifier(0, global_pool="")
    cfg = model.pretrained_cfg
    info = BodyInfo(
        arch=name,
        n_features=model.num_features,
        pooled=False,
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        weights_source=source,
    )
    info.pooled = _returns_pooled(model, info.input_size)
    return model, info


def _load_state(model: nn.Module, state: dict, arch: str, source: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    # A classifier of another size (e.g. weights fine-tuned elsewhere) is fine: it is replaced.
    missing = [k for k in missing if not _is_classifier_key(model, k)]
    if missing or unexpected:
        raise PixclassError(
            f"weights from {source} do not fit '{arch}': {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors (e.g. {(missing + unexpected)[0]})"
        )


def state_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor | Sequence[int]]) -> str | None:
    """None when `state` fits `model` exactly; else a short account ("2 missing, 1 of another shape").

    Checked before `load_state_dict`, which would raise torch's multi-line RuntimeError. `state`
    maps names to tensors, or to bare shapes (as a safetensors header gives them, before any
    tensor is read); `model` may live on the `meta` device.
    """
    own = model.state_dict()
    missing = sum(k not in state for k in own)
    unexpected = sum(k not in own for k in state)
    reshaped = sum(k in own and _shape(state[k]) != tuple(own[k].shape) for k in state)
    if not (missing or unexpected or reshaped):
        return None
    return f"{missing} missing, {unexpected} unexpected, {reshaped} of another shape"


def _shape(value: torch.Tensor | Sequence[int]) -> tuple[int, ...]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)


def _is_classifier_key(model: nn.Module, key: str) -> bool:
    head = model.default_cfg.get("classifier", "classifier")
    heads = head if isinstance(head, (list, tuple)) else [head]
    return any(key.startswith(h + ".") for h in heads)


def _returns_pooled(body: nn.Module, size: int) -> bool:
    # Transformers and some hybrids return (B, C) even with global_pool="": probe once.
    was_training = body.training
    body.eval()
    with torch.no_grad():
        out = body(torch.zeros(1, 3, size, size))
    body.train(was_training)
    return out.ndim == 2


class ImageClassifier(nn.Module):
    """A pretrained body and a new head; `groups` are the units of freezing and of LR spreading."""

    def __init__(self, body: nn.Module, head_cfg: HeadConfig):
        super().__init__()
        self.body = body
        self.head = Head(head_cfg)
        self.groups = split_groups(body, self.head)
        self.frozen_groups = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def freeze_to(self, n: int, train_bn: bool = True) -> None:
        """Freeze the first n groups (negative n counts from the end: -1 leaves only the head)."""
        self.frozen_groups = n % len(self.groups) if n < 0 else min(n, len(self.groups))
        freeze_to(self.groups, self.frozen_groups, train_bn)

    def freeze(self) -> None:
        """Train only the head (and the body's BatchNorm layers)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    @property
    def is_frozen(self) -> bool:
        """True while the whole body is frozen and only the head learns."""
        return self.frozen_groups >= len(self.groups) - 1

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Parameters per group; stray body parameters (e.g. ViT position embeddings) join group 0."""
        groups = param_groups(self.groups)
        covered = {id(p) for g in groups for p in g}
        stray = [p for p in self.parameters() if id(p) not in covered]
        groups[0] = stray + groups[0]
        return groups


def build_model(arch: str, n_out: int, pretrained: bool = True, weights: str | None = None,
                **head_kwargs: Any) -> tuple[ImageClassifier, BodyInfo]:
    """Body by timm name + a new head for `n_out` outputs, body frozen."""
    body, info = create_body(arch, pretrained, weights)
    head_cfg = HeadConfig(n_in=info.n_features, n_out=n_out, pool=not info.pooled, **head_kwargs)
    model = ImageClassifier(body, head_cfg)
    model.freeze()
    return model, info
