"""`pixclass dupes`: exact and near duplicate images, and train/valid leaks, of a folder or a run's data.

A thin wrapper over `pixclass.collect.dupes.find_duplicates`, imported inside the command so
`pixclass --help` stays fast.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

import typer

from pixclass.cli import app
from pixclass.errors import PixclassError

DUPES_SHOWN = 20  # pairs listed on the terminal; --csv has them all
SPLIT_FOLDERS = ("train", "valid")  # a folder with both is a train/valid layout: pairs across them leak


@app.command()
def dupes(
    folder: Path = typer.Argument(..., help="Image folder (class folders, or train/ and valid/), or a run folder."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write every pair here (a,b,kind,distance)."),
    max_distance: Optional[int] = typer.Option(None, "--max-distance",
                                               help="Largest perceptual-hash distance (0-63) still 'near'."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (default: all cores)."),
) -> None:
    """Find exact and near duplicate images, and copies shared by train/ and valid/ (leaks)."""
    from pixclass.collect.dupes import MAX_DISTANCE, find_duplicates
    from pixclass.data.images import is_image_file
    from pixclass.data.walk import walk_files

    data = _data_folder(folder)
    distance = MAX_DISTANCE if max_distance is None else max_distance
    if not 0 <= distance <= 63:
        raise PixclassError(f"--max-distance must be between 0 and 63, not {distance}")
    files = [p for p in walk_files(data).files if is_image_file(p)]
    splits = [s for s in SPLIT_FOLDERS if (data / s).is_dir()]
    split_of = None
    if len(splits) == len(SPLIT_FOLDERS):
        split_of = {p: p.relative_to(data).parts[0] for p in files if len(p.relative_to(data).parts) > 1}
    report = find_duplicates(files, max_distance=distance, split_of=split_of, workers=workers)
    for pair in report.pairs[:DUPES_SHOWN]:
        typer.echo(f"{pair.kind} ({pair.distance}): {pair.a}  {pair.b}")
    if len(report.pairs) > DUPES_SHOWN:
        more = f"see {csv_out}" if csv_out else "write them all with --csv OUT"
        typer.echo(f"... and {len(report.pairs) - DUPES_SHOWN} more pairs: {more}")
    for path, reason in report.skipped[:DUPES_SHOWN]:
        typer.echo(f"skipped {path}: {reason}")
    if csv_out is not None:
        from pixclass.files import atomic_write_text

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["a", "b", "kind", "distance"])
        writer.writerows([str(p.a), str(p.b), p.kind, p.distance] for p in report.pairs)
        atomic_write_text(csv_out, text.getvalue())
    typer.echo(str(report))


def _data_folder(folder: Path) -> Path:
    """The image folder: `folder` itself, or the "data" its config.json names when it is a run."""
    if not folder.is_dir():
        raise PixclassError(f"'{folder}' is not a folder: pass an image folder or a run folder")
    config = folder / "config.json"
    if not config.is_file():
        return folder
    try:
        data = json.loads(config.read_text(encoding="utf-8")).get("data")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
        raise PixclassError(f"cannot read '{config}' ({err}): pass the image folder instead") from None
    if not isinstance(data, str) or not Path(data).is_dir():
        raise PixclassError(f"the run '{folder}' names no image folder on this machine (data: {data!r}): "
                            "pass the image folder instead")
    return Path(data)
