"""CLI verb `clean`: the browser cleaner (`pixclass.cleaner`) over a run's data or an image folder.

Thin: checks the exposure rule, reads the dataset and replays the journal (a bad folder is one line,
exit 1, before any port is bound), prints the URL and runs uvicorn. Ctrl-C stops it (exit 130);
every decision is already on disk. FastAPI and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pixclass.cli import app, on_interrupt


@app.command()
def clean(
    folder: Path = typer.Argument(..., help="A run folder (cleans the images its config.json names) or an "  # noqa: B008
                                            "image folder (class folders, train/valid/test, or loose images)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (anything but loopback needs --token)."),
    port: int = typer.Option(8765, help="Port to listen on (0: any free port)."),
    token: str | None = typer.Option(None, envvar="PIXCLASS_CLEAN_TOKEN",
                                        help="Require this token on every API call (open the page with ?token=T)."),
    apply: bool = typer.Option(False, "--apply", help="Relabels also move files between class folders "
                                                      "(never overwriting; undo moves them back)."),
    sort: str | None = typer.Option(None, "--sort", help="Sort mode's classes, comma-separated, in the order "
                                                            "of the keys 1..9 (e.g. --sort cat,dog)."),
    dupes: bool = typer.Option(True, "--dupes/--no-dupes", help="Without RUN/dupes.csv, find duplicates at start-up."),
) -> None:
    """Clean a dataset in the browser: rank by label issues or loss, group duplicates, keep / relabel /
    trash with the keyboard, undo; writes cleaned.csv (name,label) and moves trash to .pixclass-trash/."""
    from pixclass.cleaner.settings import CleanerSettings, check_exposure

    check_exposure(host, token)
    classes = tuple(c.strip() for c in (sort or "").split(",") if c.strip())
    settings = CleanerSettings(apply=apply, token=token or None, sort_classes=classes, find_dupes=dupes)
    import uvicorn

    from pixclass.cleaner.app import create_app
    from pixclass.cli.serve import _bind

    web = create_app(folder, settings)
    session = web.state.cleaner
    try:
        sock = _bind(host, port)  # bound here, so the URL printed is the real one (also for --port 0)
    except BaseException:
        session.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    query = f"?token={token}" if token else ""
    typer.echo(f"cleaning {session.root} ({len(session.items)} images, {len(session.classes)} classes) at "
               f"http://{shown}:{sock.getsockname()[1]}/{query}  (Ctrl-C to stop)")
    typer.echo(f"decisions: {session.journal.path}; labels: {session.cleaned_csv}")
    with on_interrupt(lambda: f"cleaner stopped; every decision is kept in {session.journal.path}"):
        config = uvicorn.Config(web, log_level="warning", timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=[sock])
