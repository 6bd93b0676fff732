"""The Hugging Face hub as a source of pretrained weights, as timm knows it: cache first, then download.

Owns `hub_state_dict(arch)`: the local HF cache first (works offline), then a download, tried only
when `HF_HUB_OFFLINE` is not set and the hub answers a quick connection probe (`hub_reachable`).
The environment (`HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, proxies) is read at
each call, not at import, so tests and users can change it in-process.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import timm
import torch
from huggingface_hub.errors import EntryNotFoundError
from timm.models import get_pretrained_cfg

HUB_PROBE_TIMEOUT_S = 2.0  # how long we wait for the hub before calling it unreachable

# ((state dict, description of the source) or None, why the hub gave nothing)
HubResult = tuple[tuple[dict[str, torch.Tensor], str] | None, str]


def hub_state_dict(arch: str) -> HubResult:
    """ImageNet weights of timm architecture `arch` from the Hugging Face cache or hub.

    Returns ((state dict, description) or None, the reason the hub gave nothing, else "").
    """
    cfg = get_pretrained_cfg(arch)
    if cfg is None or not cfg.hf_hub_id:
        return None, "no Hugging Face hub weights known to timm"
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    cache_dir = hub_cache_dir()
    for filename in filenames:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir,
                                                        revision=revision or None)
        if isinstance(cached, str):
            return (_load_through_timm(arch, cached), f"Hugging Face cache {repo_id}"), ""
    if hub_offline():
        return None, f"{repo_id} not in the Hugging Face cache, HF_HUB_OFFLINE is set"
    if not hub_reachable():
        return None, f"{repo_id} not in the Hugging Face cache, hub unreachable"
    return _download(arch, repo_id, revision or None, filenames, cache_dir)


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


def _download(arch: str, repo_id: str, revision: str | None, filenames: list[str], cache_dir: Path) -> HubResult:
    for filename in filenames:
        try:
            path = huggingface_hub.hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=cache_dir, endpoint=os.environ.get("HF_ENDPOINT")
            )
        except EntryNotFoundError:
            continue  # the repo has the other file format
        except Exception as e:  # noqa: BLE001  (any network/HTTP failure just means "try the next source")
            return None, f"download of {repo_id} failed ({type(e).__name__})"
        return (_load_through_timm(arch, path), f"Hugging Face hub {repo_id} (downloaded)"), ""
    return None, f"{repo_id} has none of {', '.join(filenames)}"


def _load_through_timm(arch: str, path: str) -> dict[str, torch.Tensor]:
    # timm applies the arch's own checkpoint filter (old key layouts, custom loaders) on the way in.
    model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": path})
    return model.state_dict()
