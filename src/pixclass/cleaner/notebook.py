"""The cleaner inside a notebook: `clean_in_notebook(root)` serves the page from a background thread
and shows it in the output cell (an iframe in Jupyter/JupyterLab, Colab's port proxy in Colab).

Owns only the starting, showing and stopping; the page and API are `pixclass.cleaner.app`'s. The
server binds 127.0.0.1; a notebook on a remote machine reaches it through a proxy
(`url_template="/proxy/{port}/"` for jupyter-server-proxy): the page's URLs are relative, so
it works under any path prefix.
"""

from __future__ import annotations

import html
import os
import socket
import threading
import time

from pixclass.cleaner.settings import CleanerSettings
from pixclass.errors import PixclassError

START_WAIT = 30.0  # seconds to wait for uvicorn to start (it takes well under one on a laptop)


class NotebookCleaner:
    """A running cleaner: `url`, `session`; shows itself as an iframe; `stop()` ends it."""

    def __init__(self, app, port: int, height: int, url_template: str | None):
        import uvicorn

        self.session = app.state.cleaner
        self.height = height
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            sock.close()
            self.session.close()
            raise PixclassError(
                f"cannot listen on 127.0.0.1:{port} ({err.strerror or err}); pick another port") from None
        self.port = sock.getsockname()[1]
        self.url = (url_template or "http://127.0.0.1:{port}/").format(port=self.port)
        self._sock = sock
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="pixclass-clean")
        self._thread.start()
        deadline = time.monotonic() + START_WAIT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise PixclassError(f"the cleaner did not start within {START_WAIT:g} s")
            time.sleep(0.01)

    def _repr_html_(self) -> str:
        if _in_colab():
            from google.colab import output  # type: ignore[import-not-found]

            output.serve_kernel_port_as_iframe(self.port, height=self.height)
            return f"<p>pixclass clean: {html.escape(str(self.session.root))}</p>"
        src = html.escape(self.url, quote=True)
        return (f'<iframe src="{src}" width="100%" height="{self.height}" style="border:1px solid #ddd"></iframe>'
                f'<p><a href="{src}" target="_blank">open the cleaner in its own tab</a></p>')

    def stop(self) -> None:
        """Stop the server and release the folder (every decision is already on disk)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(START_WAIT)
        self._sock.close()
        self.session.close()

    def __repr__(self) -> str:
        return f"NotebookCleaner({str(self.session.root)!r}, url={self.url!r})"


def clean_in_notebook(root: str | os.PathLike, settings: CleanerSettings | None = None, port: int = 0,
                      height: int = 760, url_template: str | None = None) -> NotebookCleaner:
    """Start the cleaner on `root` (a run or an image folder) in the background; display the result.

    Args:
        settings: as for `pixclass clean` (`CleanerSettings(apply=True)` ...).
        port: 0 picks a free one.
        height: of the iframe, in pixels.
        url_template: the page's address as the browser reaches it, `{port}` filled in; e.g.
            "/proxy/{port}/" behind jupyter-server-proxy. Colab is recognised by itself.
    """
    from dataclasses import replace

    from pixclass.cleaner.app import create_app

    settings = settings or CleanerSettings()
    if url_template or _in_colab():  # a proxy stands between: the browser's Origin is not our Host
        settings = replace(settings, check_origin=False)
    return NotebookCleaner(create_app(root, settings), port, height, url_template)


def _in_colab() -> bool:
    import sys

    return "google.colab" in sys.modules
