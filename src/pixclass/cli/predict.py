"""CLI verbs that use an exported model: predict (and, later, info).

Thin over `pixclass.export`; nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from pixclass.cli import app


@app.command()
def predict(
    model: str = typer.Argument(..., help="A .pixclass model file."),
    paths: List[str] = typer.Argument(..., help="Image files and folders (searched recursively)."),
    csv: Optional[str] = typer.Option(None, help="Also write path,label,prob to this CSV."),
    bs: Optional[int] = typer.Option(None, help="Images per batch (default: 8 on a CPU, 64 on a GPU)."),
) -> None:
    """Predict images with an exported model; prints one line per image."""
    from pixclass.export.predict_files import predict_files

    n_ok, n_bad = predict_files(model, paths, csv, bs, echo=typer.echo)
    if n_bad:
        typer.echo(f"{n_bad} file(s) could not be read; run 'pixclass verify' on their folder", err=True)
    if csv:
        typer.echo(f"wrote {n_ok} predictions to {csv}")
