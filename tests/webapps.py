"""What the tests of pixclass's web pages share: a real uvicorn server on 127.0.0.1 in a thread,
and Debian's chromium driven by Playwright (its own browser download cannot work here).

(A module of its own, not a conftest: the test folders have no `__init__.py`.)
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

WAIT = 60.0  # seconds: the bound of every wait for a server (never a speed target)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# For a module's `pytestmark`: the browser tests need Debian's chromium (`.ci/run` installs it).
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="Debian's chromium is not installed (apt-get install chromium)")


@contextmanager
def running_uvicorn(app, ready: str = "/") -> Iterator[str]:
    """A real uvicorn server for `app` on 127.0.0.1 (an OS-chosen port), in a thread; yields its URL
    once GET `ready` answers 200."""
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
        while httpx.get(f"{url}{ready}", timeout=WAIT).status_code != 200:
            assert time.monotonic() < deadline, f"{ready} did not answer 200 within {WAIT} s"
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


@contextmanager
def chromium() -> Iterator:
    """A headless Debian chromium under Playwright (`--no-sandbox`: the tests run as root)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()
