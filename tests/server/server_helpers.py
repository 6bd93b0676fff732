"""Helpers of the server tests: tiny exported models, an in-process httpx client, a real server, the CLI.

Models are timm's `test_efficientnet` with random weights (no training, no download) saved as
bundles with the description `export_learner` writes. `asgi_client` talks to an app through httpx's
ASGITransport (its lifespan run as uvicorn runs it); `running_server` starts a real uvicorn on
127.0.0.1 with an OS-chosen port in a thread. (A module of its own, not conftest: test directories
without `__init__.py` would all import some `conftest`.)
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from imagefiles import SIZE, TINY_ARCH
from pixclass.server.app import create_app
from pixclass.server.settings import ServerSettings

WAIT = 60.0  # seconds: the bound of every wait for a server or a model (never a speed target)


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


@contextmanager
def running_server(app) -> Iterator[str]:
    """A real uvicorn server for `app` on 127.0.0.1 (an OS-chosen port), in a thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        while httpx.get(f"{url}/ready", timeout=WAIT).status_code != 200:
            assert time.monotonic() < deadline, f"the model was not ready within {WAIT} s"
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


def run_cli(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    """Run `python -m pixclass ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "pixclass", *args], check=False, capture_output=True,
                          text=True, timeout=timeout)
