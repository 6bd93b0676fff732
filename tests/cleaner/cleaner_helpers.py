"""Helpers of the cleaner tests: small datasets on disk, a real uvicorn server in a thread, a browser.

(A module of its own, not conftest: test directories without `__init__.py` would all import some
`conftest`.)
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from imagefiles import CLASS_COLOURS, save_image

WAIT = 60.0  # seconds: the bound of every wait for a server (never a speed target)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def colour_folders(root: Path, n: int = 3) -> Path:
    """`root/<blue|green|red>/<colour>_<i>.<jpg|png>`, n per class, distinct pictures."""
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(n):
            save_image(root / name / f"{name}_{i}.{'jpg' if i % 2 == 0 else 'png'}", colour, 100 * c + i)
    return root


def loose_images(root: Path, names: list[str]) -> Path:
    """Unlabelled images lying loose in `root`."""
    for i, name in enumerate(names):
        save_image(root / name, list(CLASS_COLOURS.values())[i % 3], 900 + i)
    return root


def csv_rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@contextmanager
def running_app(app) -> Iterator[str]:
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
        assert httpx.get(f"{url}/", timeout=WAIT).status_code == 200
        yield url
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
