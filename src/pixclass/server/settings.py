"""What the inference server allows and how it batches: `ServerSettings`, one place for each default.

Also owns the exposure rule (a server bound beyond loopback needs an API key) and carrying the
settings to uvicorn worker processes through an environment variable (`--workers N`).
Importing this module is cheap: no FastAPI, no torch.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from pixclass.errors import PixclassError

MiB = 1024 * 1024

# Environment variables that carry a server to uvicorn's worker processes (`--workers N`).
ENV_MODEL = "PIXCLASS_SERVE_MODEL"
ENV_SETTINGS = "PIXCLASS_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServerSettings:
    """Limits, batching and access of one server. Every field has a default; override by name."""

    # A 50-MP camera JPEG is 15-25 MB and a 4K PNG screenshot about 10 MB; anything bigger is not
    # a photo worth classifying at 224 px. Uploads are held in memory, so this bounds memory too.
    max_file_bytes: int = 32 * MiB
    # The whole body (all files plus multipart framing): two files at the per-file limit. With
    # `max_files` it bounds what one request can make the server hold (decoded JPEGs are drafted
    # down to the model's input size; other formats are bounded by `MAX_PIXELS`).
    max_request_bytes: int = 64 * MiB
    # Files per request: 32 lite0 images take about 0.6 s on a 2-core CPU; more belongs in several
    # requests (or `pixclass predict` for whole folders), so one client cannot hog the model.
    max_files: int = 32
    # Seconds from the first byte of a request to its answer (upload, decoding, waiting for and
    # running the model). A busy 2-core server answers a full request within a few seconds; 30 s
    # only trips on a stuck client or a badly overloaded server, and is under browsers' and
    # proxies' own timeouts (60 s for nginx), so the client gets our JSON error, not theirs.
    timeout_s: float = 30.0
    # Micro-batching: concurrent requests' images share forward passes (see `batcher`). Off: on a
    # 2-core CPU it gained nothing. ONNX Runtime's CPU cost per lite0 image does not fall with the
    # batch (7.1 ms at batch 1, 7.5 at 4, 8.2 at 8, 8.9 at 16, one thread), so batching only adds
    # queueing. benchmarks/bench_serve.py (lite0 at 224 px, 640x480 JPEGs, 8 concurrent clients) in
    # its quietest round (load average 4-5): direct 83-89 req/s, p50 88-95 ms, 10.3-11.0 ms server
    # CPU per request; micro-batching (batch 8, wait 0/2/5 ms) 84-87 req/s, p50 88-90 ms, 10.1-10.8
    # ms. Busier rounds (load 9-11) scattered both (16-40 req/s) with no steady winner. Worth trying
    # on a GPU, where batches pay.
    micro_batching: bool = False
    max_batch: int = 8  # images per forward pass when micro-batching (CPU cost per image is flat to 8)
    max_wait_ms: float = 2.0  # a lone request waits this long for company; 0, 2 and 5 measured alike
    # When set, every route but /health, /ready and the page needs `Authorization: Bearer KEY`
    # or `X-API-Key: KEY`.
    api_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_request_bytes", "max_files", "max_batch"):
            if getattr(self, name) < 1:
                raise PixclassError(f"server setting {name} must be at least 1, got {getattr(self, name)}")
        if self.timeout_s <= 0 or self.max_wait_ms < 0:
            raise PixclassError("server settings timeout_s must be positive and max_wait_ms not negative")

    def to_env(self) -> str:
        """The settings as the JSON text of `ENV_SETTINGS` (for worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str | None) -> ServerSettings:
        """Settings from `to_env()` text; unknown keys are refused, missing ones take defaults."""
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PixclassError(f"{ENV_SETTINGS} holds unknown server settings {unknown}; known: {sorted(known)}")
        return cls(**data)


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # any other host name may resolve to a public address
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to serve on a non-loopback address without an API key.

    Raises:
        PixclassError: one line saying why and what to pass.
    """
    if not api_key and not is_loopback(host):
        raise PixclassError(
            f"refusing to serve on {host} without an API key: anyone who can reach it could use the "
            f"model. Pass --api-key KEY (or set PIXCLASS_API_KEY), or bind to 127.0.0.1"
        )


def settings_from_environ(environ: os._Environ | dict[str, str] = os.environ) -> tuple[str, ServerSettings]:
    """The model path and settings a uvicorn worker process was started with."""
    model = environ.get(ENV_MODEL)
    if not model:
        raise PixclassError(f"{ENV_MODEL} is not set: start the server with 'pixclass serve MODEL'")
    return model, ServerSettings.from_env(environ.get(ENV_SETTINGS))
