"""`pixclass download`, `fetch` and `verify`: thin wrappers over `pixclass.collect`.

The API is imported inside each command so `pixclass --help` stays fast (and torch-free).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pixclass.cli import app


@app.command()
def download(
    urls: Path = typer.Argument(..., help="Text file (one URL a line) or CSV (url[,label])."),
    out: Path = typer.Option(..., "--out", "-o", help="Destination folder (labels become subfolders)."),
    size: int | None = typer.Option(None, help="Shrink to this longest side, keeping the aspect ratio."),
    pad: bool = typer.Option(False, "--pad", help="Pad resized images to a black square."),
    max_bytes: int = typer.Option(20_000_000, help="Stop reading a response past this many bytes."),
    timeout: float = typer.Option(20.0, help="Seconds of inactivity before a request times out."),
    retries: int = typer.Option(3, help="Retries after 429/5xx/timeouts, with backoff."),
    concurrency: int = typer.Option(64, help="Requests in flight at once."),
    per_host: int = typer.Option(16, help="Requests in flight at once to one host."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Download images from a URL list into a folder, with a manifest.csv; reruns resume."""
    from pixclass.cli import on_interrupt
    from pixclass.collect.manifest import describe_kept

    with on_interrupt(lambda: f"download interrupted: {describe_kept(out)}; run the same command again to continue"):
        from pixclass.collect.download import download_images

        summary = download_images(urls, out, size=size, pad=pad, max_bytes=max_bytes, timeout=timeout,
                                  retries=retries, concurrency=concurrency, per_host=per_host, progress=progress)
        _echo_failures(summary)
        typer.echo(str(summary))


def _echo_failures(summary, shown: int = 10) -> None:  # noqa: ANN001 - a DownloadSummary
    failed = [r for r in summary.records if r.status == "failed"]
    for record in failed[:shown]:
        typer.echo(f"failed: {record.url}: {record.error}")
    if len(failed) > shown:
        typer.echo(f"... and {len(failed) - shown} more failures (the 'error' column of {summary.manifest})")


@app.command()
def fetch(
    queries: Path = typer.Argument(..., help="CSV: class name, then search terms separated by ';'."),
    out: Path = typer.Option(..., "--out", "-o", help="Destination folder; one subfolder per class."),
    provider: list[str] = typer.Option(["ddg"], "--provider", "-p", help="ddg, bing, flickr or urls (repeatable)."),
    max_per_class: int = typer.Option(100, "--max", "-m", help="Images to aim for per class."),
    size: int | None = typer.Option(None, help="Shrink to this longest side, keeping the aspect ratio."),
    pad: bool = typer.Option(False, "--pad", help="Pad resized images to a black square."),
    timeout: float = typer.Option(20.0, help="Seconds of inactivity before a download times out."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Search image providers for each class of a query CSV and download the results."""
    from pixclass.cli import on_interrupt
    from pixclass.collect.manifest import describe_kept

    with on_interrupt(lambda: f"fetch interrupted: {describe_kept(out)}; run the same command again to continue"):
        from pixclass.collect.fetch import fetch_images

        summary = fetch_images(queries, out, providers=provider, max_per_class=max_per_class, size=size, pad=pad,
                               timeout=timeout, progress=progress)
        for label, n in summary.found.items():
            before = summary.already[label]
            typer.echo(f"{label}: {n} new URLs found" + (f" ({before} images from earlier runs)" if before else ""))
        _echo_failures(summary.download)
        typer.echo(str(summary.download))


VERIFY_SHOWN = 20  # problem files listed on the terminal; verify.csv has them all


@app.command()
def verify(
    folder: Path = typer.Argument(..., help="Dataset folder, checked recursively."),
    max_size: int | None = typer.Option(None, help="Report (and with --fix shrink) images larger than this."),
    fix: bool = typer.Option(False, "--fix", help="Rewrite fixable images; originals go to .quarantine/."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only: move and rewrite nothing."),
    workers: int | None = typer.Option(None, help="Worker processes (default: all cores)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    full_decode: bool = typer.Option(False, "--full-decode",
                                     help="Decode every image, even JPEGs whose structure already proves them "
                                     "readable."),
) -> None:
    """Find unreadable, truncated and awkward images; quarantine bad files, never delete; write verify.csv."""
    from pixclass.cli import on_interrupt
    from pixclass.collect.verify import LOG_NAME, QUARANTINE_DIR, verify_images

    moved: list[str] = []

    def interrupted() -> str:
        again = "run the same command again to finish"
        if dry_run or not moved:
            return f"verify interrupted: no file was moved; {again}"
        log = folder / QUARANTINE_DIR / LOG_NAME
        files = f"{len(moved)} file{'s' if len(moved) != 1 else ''}"
        return f"verify interrupted: {files} moved so far {'are' if len(moved) != 1 else 'is'} logged in {log}; {again}"

    with on_interrupt(interrupted):
        report = verify_images(folder, max_size=max_size, fix=fix, quarantine=not dry_run, workers=workers,
                               progress=progress, full_decode=full_decode,
                               on_check=lambda check: moved.append(check.file) if check.moved_to else None)
    problems = [check for check in report.checks if check.problems]
    for check in problems[:VERIFY_SHOWN]:
        typer.echo(f"{check.file}: {check.problem} ({check.detail}) -> {check.action}")
    if len(problems) > VERIFY_SHOWN:
        typer.echo(f"... and {len(problems) - VERIFY_SHOWN} more: see {report.report}")
    typer.echo(str(report))
