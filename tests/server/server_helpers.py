"""Helpers of the server tests: tiny exported models, an in-process httpx client, a real server, the CLI.

Models are timm's `test_efficientnet` with random weights (no training, no download) saved as
bundles with the description `export_learner` writes. `asgi_client` talks to an app through httpx's
ASGITransport (its lifespan run as uvicorn runs it); `running_server` starts a real uvicorn on
127.0.0.1 with an OS-chosen port in a thread. (A module of its own, not conftest: test directories
without `__init__.py` would all import some `conftest`.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from imagefiles import SIZE, TINY_ARCH
from pixclass.server.app import create_app
from pixclass.server.settings import ServerSettings
from webapps import WAIT, running_uvicorn


def write_bundle(path: Path, task: str, classes: list[str], seed: int = 0) -> Path:
    """A bundle of a random-weight tiny model, described as `export_learner` describes one."""
    import torch

    import pixclass
    from pixclass.export.bundle import save_bundle
    from pixclass.export.bundle_meta import RESIZE
    from pixclass.models.backbones import build_model

    torch.manual_seed(seed)
    model, info = build_model(TINY_ARCH, len(classes) or 1, pretrained=False)
    meta = {"arch": TINY_ARCH, "head": model.head.cfg.to_dict(), "task": task, "classes": classes,
            "threshold": 0.5, "input_size": SIZE, "resize": RESIZE, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "pixclass_version": pixclass.__version__,
            "weights_source": info.weights_source,
            "training": {"epochs": 0, "final": None, "n_train": 0, "n_valid": 0}}
    return save_bundle(path, model.eval(), meta)


def files_field(named: dict[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """httpx `files=` for several uploads in the repeated field `file`."""
    return [("file", (name, data, "application/octet-stream")) for name, data in named.items()]


@asynccontextmanager
async def asgi_client(app, headers: dict[str, str] | None = None, ready: bool = True
                      ) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `app` in-process, its lifespan running; waits for /ready unless `ready=False`."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            if ready:
                await wait_ready(client)
            yield client


async def wait_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + WAIT
    while (await client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, f"the model was not ready within {WAIT} s"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def client_for(predictor, **settings) -> AsyncIterator[httpx.AsyncClient]:
    """A ready in-process client of a new app serving `predictor` with these settings."""
    async with asgi_client(create_app(predictor, ServerSettings(**settings))) as client:
        yield client


def running_server(app):
    """A real uvicorn server for a prediction app on 127.0.0.1, once its model is ready
    (`webapps.running_uvicorn`); yields its URL."""
    return running_uvicorn(app, ready="/ready")


def run_cli(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    """Run `python -m pixclass ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "pixclass", *args], check=False, capture_output=True,
                          text=True, timeout=timeout)
