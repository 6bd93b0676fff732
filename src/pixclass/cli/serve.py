"""CLI verb `serve`: an exported model behind HTTP with an upload page (`pixclass.server`).

Thin: checks the exposure rule, loads the model once (a bad file is one line, exit 1, before any
port is bound), prints the URL and runs uvicorn. Ctrl-C stops the server: exit code 130, as for
every verb. FastAPI, uvicorn and the model's runtime are imported only when the command runs.
"""

from __future__ import annotations

import os
import socket

import typer

from pixclass.cli import app, on_interrupt
from pixclass.errors import PixclassError


@app.command()
def serve(
    model: str = typer.Argument(..., help="A .pixclass bundle or a .onnx file from 'pixclass export --onnx'."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (anything but loopback needs --api-key)."),
    port: int = typer.Option(8000, help="Port to listen on (0: any free port)."),
    workers: int = typer.Option(1, min=1, help="Server processes, each with its own copy of the model."),
    api_key: str | None = typer.Option(None, envvar="PIXCLASS_API_KEY",
                                       help="Require this key (Authorization: Bearer KEY or X-API-Key: KEY) "
                                            "on /predict, /info and /metrics."),
) -> None:
    """Serve a model over HTTP: an upload page at /, POST /predict, /health, /ready, /info, /metrics."""
    from pixclass.server.settings import ServerSettings, check_exposure

    check_exposure(host, api_key)
    settings = ServerSettings(api_key=api_key or None)
    from pixclass.export.predictor import load_model

    predictor = load_model(model)
    with on_interrupt(lambda: "server stopped"):
        if workers == 1:
            _serve_one(predictor, settings, host, port, model)
        else:
            _serve_workers(model, predictor, settings, host, port, workers)


def _serve_one(predictor, settings, host: str, port: int, model: str) -> None:
    import uvicorn

    from pixclass.server.app import create_app

    sock = _bind(host, port)  # bound here, so the URL printed is the real one (also for --port 0)
    _announce(model, predictor, host, sock.getsockname()[1], 1)
    config = uvicorn.Config(create_app(predictor, settings), log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_workers(model: str, predictor, settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from pixclass.server.settings import ENV_MODEL, ENV_SETTINGS

    _bind(host, port).close()  # a port in use is one line here, not a traceback per worker
    os.environ[ENV_MODEL] = os.path.abspath(model)
    os.environ[ENV_SETTINGS] = settings.to_env()
    _announce(model, predictor, host, port, workers)  # each worker process loads its own copy
    uvicorn.run("pixclass.server.app:app_from_environ", factory=True, host=host, port=port, workers=workers,
                log_level="warning", timeout_graceful_shutdown=5)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise PixclassError(f"cannot listen on {host}:{port} ({err.strerror or err}); "
                            f"pick another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _announce(model: str, predictor, host: str, port: int, workers: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    what = f"{predictor.meta.get('arch')}, {len(predictor.classes)} classes, {predictor.runtime}"
    if workers > 1:
        what += f", {workers} worker processes"
    typer.echo(f"serving {model} ({what}) at http://{shown}:{port}/  (Ctrl-C to stop)")
