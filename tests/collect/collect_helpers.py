"""Helpers for the collect tests: a real HTTP server on 127.0.0.1, a TLS-intercepting proxy,
real image bytes, and the recorded shape of a Bing results page.

`server.route(path, handler)` registers a handler `(Request) -> Reply`; the server runs in a
thread on an OS-chosen port. Nothing leaves the loopback. (A module of its own, not conftest.py,
so `from collect_helpers import ...` cannot pick up another folder's conftest.)
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


Handler = Callable[[Request], Reply]


class FakeServer:
    """A threaded HTTP/1.1 server whose routes the test defines."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.fallback: Handler | None = None  # answers paths without a route (default: 404)
        self.hits: Counter[str] = Counter()
        self.open_connections = 0  # client connections currently open
        self._lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each body waits ~40 ms for a delayed ACK

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.open_connections += 1

            def finish(self) -> None:
                with fake._lock:
                    fake.open_connections -= 1
                super().finish()

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.hits[parts.path] += 1
                handler = fake.routes.get(parts.path, fake.fallback)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                reply = handler(Request(parts.path, query, dict(self.headers))) if handler else Reply(404, b"no route")
                if reply.delay:
                    time.sleep(reply.delay)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                try:
                    if isinstance(reply.body, bytes):
                        if "Content-Length" not in reply.headers:
                            self.send_header("Content-Length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                    else:  # a stream: no length, close when done
                        self.send_header("Connection", "close")
                        self.close_connection = True
                        self.end_headers()
                        for chunk in reply.body:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped reading: that's the point

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def route(self, path: str, handler: Handler | Reply) -> str:
        """Serve `path` (a fixed Reply or a handler); returns its full URL."""
        self.routes[path] = handler if callable(handler) else (lambda _req, r=handler: r)
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base + path


def make_image(seed: int = 0, size: tuple[int, int] = (64, 48), fmt: str = "JPEG", mode: str = "RGB", **save) -> bytes:
    """Real encoded image bytes; a different `seed` gives different pixels (and hash)."""
    import random

    rng = random.Random(seed)
    im = Image.new(mode, size)
    im.putdata([tuple(rng.randrange(256) for _ in mode) if len(mode) > 1 else rng.randrange(256)
                for _ in range(size[0] * size[1])])
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def blank_image(size: tuple[int, int], fmt: str = "PNG", mode: str = "L") -> bytes:
    """A big but tiny-to-encode image (one colour), e.g. for the decompression-bomb guard."""
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt)
    return buf.getvalue()


class InterceptingProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that answers every tunnel itself over TLS.

    Clients that honour a proxy (ddgs does) believe they talk to the real host; the routes of
    `server` (a FakeServer's table) answer instead, so no packet leaves the machine.
    """

    def __init__(self, routes: FakeServer, cert: str, key: str):
        import socketserver
        import ssl

        self.tunnels: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        inner_handler = routes.httpd.RequestHandlerClass
        proxy = self

        class _Tunnel(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline(8192).decode("latin-1").strip()
                for _ in range(100):  # skip the CONNECT headers, bounded
                    if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                        break
                proxy.tunnels.append(request_line)
                if not request_line.startswith("CONNECT "):
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    return
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                tls = context.wrap_socket(self.connection, server_side=True)
                inner_handler(tls, self.client_address, routes.httpd)

        class _Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

        self.server = _Server(("127.0.0.1", 0), _Tunnel)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)




def bing_page(urls: list[str]) -> str:
    """The shape of a Bing `images/async` page: one `a.iusc` with escaped `m` JSON per result."""
    import html
    import json

    def meta(i: int, u: str) -> str:
        return json.dumps({"cid": "x", "purl": f"https://page/{i}", "murl": u, "turl": "https://tse/t",
                           "t": f"Coral {i}"})

    tiles = "".join(
        f'<div class="imgpt"><a class="iusc" style="height:180px" '
        f'm="{html.escape(meta(i, u))}" '
        f'href="/images/search?view=detailV2"><img class="mimg" src="https://tse/t"></a></div>'
        for i, u in enumerate(urls)
    )
    return f'<!DOCTYPE html><html><body><div class="dgControl"><ul><li>{tiles}</li></ul></div></body></html>'
