"""`pixclass dupes`: exact and near duplicate images, and train/valid leaks, of a folder or a run's data.

A thin wrapper over `pixclass.collect.dupes.find_duplicates`, imported inside the command so
`pixclass --help` stays fast. With `--embeddings` on a run folder, the run's model (its final
weights) computes the pooled body features of the run's own train and valid images; pairs of
similar features are near too, and the run's split says what leaks. The CSV's columns are
a,b,kind,distance,method (method: content|phash|embedding).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import typer

from pixclass.cli import app
from pixclass.errors import PixclassError

DUPES_SHOWN = 20  # pairs listed on the terminal; --csv has them all
SPLIT_FOLDERS = ("train", "valid")  # a folder with both is a train/valid layout: pairs across them leak


@app.command()
def dupes(
    folder: Path = typer.Argument(..., help="Image folder (class folders, or train/ and valid/), or a run folder."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write every pair here (a,b,kind,distance,method)."),
    max_distance: int | None = typer.Option(None, "--max-distance",
                                            help="Largest perceptual-hash distance (0-63) still 'near'."),
    workers: int | None = typer.Option(None, help="Worker processes (default: all cores)."),
    embeddings: bool = typer.Option(False, "--embeddings",
                                    help="RUN only: also pair images whose pooled features (the run's model) "
                                         "are similar; the run's train/valid split gives the leaks."),
    min_cosine: float | None = typer.Option(None, "--min-cosine",
                                            help="With --embeddings: smallest cosine similarity still 'near'."),
) -> None:
    """Find exact and near duplicate images, and copies shared by train/ and valid/ (leaks)."""
    from pixclass.collect.dupes import MAX_DISTANCE, find_duplicates
    from pixclass.collect.embedding_dupes import MIN_COSINE

    distance = MAX_DISTANCE if max_distance is None else max_distance
    if not 0 <= distance <= 63:
        raise PixclassError(f"--max-distance must be between 0 and 63, not {distance}")
    cosine = MIN_COSINE if min_cosine is None else min_cosine
    if not -1 <= cosine <= 1:
        raise PixclassError(f"--min-cosine must be between -1 and 1, not {cosine}")
    features = None
    if embeddings:
        files, split_of, features = _run_features(folder)
    else:
        files, split_of = _folder_files(_data_folder(folder))
    report = find_duplicates(files, max_distance=distance, split_of=split_of, workers=workers,
                             embeddings=features, min_cosine=cosine)
    for pair in report.pairs[:DUPES_SHOWN]:
        typer.echo(f"{pair.kind} ({pair.method} {pair.distance}): {pair.a}  {pair.b}")
    if len(report.pairs) > DUPES_SHOWN:
        more = f"see {csv_out}" if csv_out else "write them all with --csv OUT"
        typer.echo(f"... and {len(report.pairs) - DUPES_SHOWN} more pairs: {more}")
    for path, reason in report.skipped[:DUPES_SHOWN]:
        typer.echo(f"skipped {path}: {reason}")
    if csv_out is not None:
        from pixclass.files import atomic_write_text

        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["a", "b", "kind", "distance", "method"])
        writer.writerows([str(p.a), str(p.b), p.kind, p.distance, p.method] for p in report.pairs)
        atomic_write_text(csv_out, text.getvalue())
    typer.echo(str(report))


def _folder_files(data: Path) -> tuple[list[Path], dict[Path, str] | None]:
    """The image files under `data`, and their split when it holds both train/ and valid/."""
    from pixclass.data.images import is_image_file
    from pixclass.data.walk import walk_files

    files = [p for p in walk_files(data).files if is_image_file(p)]
    if not all((data / s).is_dir() for s in SPLIT_FOLDERS):
        return files, None
    return files, {p: p.relative_to(data).parts[0] for p in files if len(p.relative_to(data).parts) > 1}


def _run_features(run: Path):
    """(train + valid image paths, their split, their pooled body features (N, F)) of a run's model."""
    import torch

    from pixclass.train import runfolder
    from pixclass.train.recipe import final_weights, load_trained

    runfolder.require_run(run, "compare the features of")
    final_weights(run, " or leave out --embeddings")  # before the lock: a clear refusal
    with runfolder.RunLock(run):
        learn = load_trained(run)
        splits = [s for s in ("train", "valid") if learn.data.paths(s)]
        typer.echo(f"body features of {sum(len(learn.data.paths(s)) for s in splits)} images "
                   f"({learn.arch}, {learn.data.size} px)...")
        paths = [Path(p) for s in splits for p in learn.data.paths(s)]
        split_of = {Path(p): s for s in splits for p in learn.data.paths(s)}
        features = torch.cat([learn.features.get(s)[0].float().cpu() for s in splits]).numpy()
    return paths, split_of, features


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
                            "pass the image folder instead, or add --embeddings (the run's own images)")
    return Path(data)
