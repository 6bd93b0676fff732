"""What the cleaner cleans: the dataset root and its images with their labels, from a run or a folder.

Owns `load_dataset(path)`. A run folder's config.json "data" names the images: a folder (its class
folders, or train/valid/test ones) or a CSV file (the root is the folder its images are in:
the CSV's folder, or its "folder" setting; multi-label runs give tag lists). An image folder is
read like training reads it (`pixclass.data.walk`, `pixclass.data.images`): the label of an image
is its class folder's name; images lying loose in the root have none (sort mode files them).
Images whose real file lies outside the root (through a link) are left out and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pixclass.cleaner.paths import is_inside
from pixclass.data.images import is_image_file
from pixclass.data.walk import walk_files
from pixclass.errors import PixclassError

SPLITS = ("train", "valid")  # both present: the ImageNet layout (train/<class>/, valid/<class>/, test/)
TEST = "test"  # beside class folders or splits: unlabelled test images, not a class

Layout = Literal["folders", "splits", "csv"]


@dataclass(frozen=True)
class Item:
    """One image as listed: `name` is its path relative to the root with '/' (its key in the journal)."""

    name: str
    labels: tuple[str, ...]  # () unlabelled; one for single-label data; the tags for multi-label
    split: str | None = None  # train, valid or test by the folder layout; None otherwise


@dataclass(frozen=True)
class Dataset:
    """The root, its items (sorted by name), the classes (or tags) and where they came from."""

    root: Path  # resolved
    items: list[Item]
    classes: list[str]
    layout: Layout
    multi: bool = False
    run: Path | None = None
    csv: Path | None = None  # the run's CSV file (layout "csv")
    outside: int = 0  # images left out: links to files outside the root
    notes: list[str] = field(default_factory=list)


def load_dataset(path: str | os.PathLike) -> Dataset:
    """The dataset of a run folder or an image folder.

    Raises:
        PixclassError: `path` is not a folder, the run names no data on this machine, or a CSV
            cannot be read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise PixclassError(f"'{folder}' is not a folder: pass a run folder or an image folder")
    if (folder / "config.json").is_file():
        return _from_run(folder)
    return _from_folder(folder.resolve(), None)


def _from_run(run: Path) -> Dataset:
    from pixclass.train.recipe import TrainConfig

    cfg = TrainConfig.load(run)
    data = Path(cfg.data)
    if cfg.data.startswith("elpv:"):
        raise PixclassError(f"the run '{run}' trained on the embedded demo data ({cfg.data}), which is not a "
                            "folder to clean: pass an image folder instead")
    if data.is_dir():
        return _from_folder(data.resolve(), run.resolve())
    if data.is_file():
        return _from_csv(data.resolve(), cfg, run.resolve())
    raise PixclassError(f"the run '{run}' names data that is not on this machine ({cfg.data!r}): "
                        "pass the image folder instead")


def _from_folder(root: Path, run: Path | None) -> Dataset:
    found = walk_files(root)
    files = [p for p in found.files if is_image_file(p)]
    inside = [p for p in files if is_inside(p, root)]
    rels = [p.relative_to(root).parts for p in inside]
    splits = all((root / s).is_dir() for s in SPLITS)
    items = [Item("/".join(parts), *_folder_label(parts, splits)) for parts in rels]
    classes = sorted({label for item in items for label in item.labels})
    return Dataset(root, sorted(items, key=lambda i: i.name), classes, "splits" if splits else "folders",
                   run=run, outside=len(files) - len(inside))


def _folder_label(parts: tuple[str, ...], splits: bool) -> tuple[tuple[str, ...], str | None]:
    """(labels, split) of an image at `parts` below the root."""
    if parts[0] == TEST and len(parts) > 1:
        return (), TEST
    if splits and parts[0] in SPLITS:
        return ((parts[1],) if len(parts) > 2 else ()), parts[0]
    return ((parts[0],) if len(parts) > 1 else ()), None


def _from_csv(csv: Path, cfg, run: Path) -> Dataset:
    from pixclass.data.images import IMAGE_EXTENSIONS
    from pixclass.data.sources import column, from_df
    from pixclass.train.recipe import read_table

    root = (csv.parent / cfg.folder).resolve() if cfg.folder else csv.parent
    df = read_table(csv)
    suffixes = [cfg.suffix] if cfg.suffix else ["", *sorted(IMAGE_EXTENSIONS)]
    # Rows whose file is gone (trashed by an earlier session: the journal knows them) are left out
    # here; the data source would refuse the whole table.
    there = column(df, cfg.fn_col or 0, "file-name").astype(str).map(
        lambda name: any((root / f"{name}{s}").is_file() for s in suffixes))
    table = from_df(df[there.to_numpy()], path=csv.parent, folder=cfg.folder, fn_col=cfg.fn_col or 0,
                    label_col=cfg.label_col or 1, suffix=cfg.suffix, allow_outside=True)
    items: dict[str, Item] = {}
    outside = 0
    for path, label in zip(table.paths, table.labels):
        if not is_inside(path, root):
            outside += 1
            continue
        name = Path(os.path.relpath(os.path.abspath(path), root)).as_posix()
        items.setdefault(name, Item(name, _csv_labels(label, cfg.label_delim)))
    listed = sorted(items.values(), key=lambda i: i.name)
    classes = sorted({label for item in listed for label in item.labels})
    gone = int((~there).sum())
    notes = [f"{gone} rows of {csv.name} name files that are not there (trashed or moved away)"] if gone else []
    return Dataset(root, listed, classes, "csv", multi=cfg.label_delim is not None, run=run, csv=csv,
                   outside=outside, notes=notes)


def _csv_labels(label: object, delim: str | None) -> tuple[str, ...]:
    if label is None:
        return ()
    text = str(label)
    if delim is None:
        return (text,)
    return tuple(t for t in (text.split(delim) if delim else text.split()) if t)
