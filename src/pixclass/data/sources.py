"""Where items and labels come from: folders, CSV files / DataFrames, file-name patterns, lists.

Owns: turning each source into `Items` (paths, raw labels, an optional train/valid flag and
optional unlabelled test paths). Splitting and encoding happen elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixclass.data.images import is_image_file
from pixclass.data.walk import walk_files
from pixclass.errors import PixclassError


@dataclass
class Items:
    """Labelled image paths; `is_valid` is None when the source does not say how to split."""

    paths: list[Path]
    labels: list[Any]
    is_valid: list[bool] | None = None
    test_paths: list[Path] = field(default_factory=list)


def image_files(folder: str | os.PathLike, recurse: bool = True) -> list[Path]:
    """Image files below `folder`, sorted, as `pixclass verify` sees them (`pixclass.data.walk`).

    Hidden files and folders (like `.quarantine`) are skipped and folder links followed once.
    Links that lead nowhere are kept, so reading them fails with an error naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PixclassError(f"folder '{folder}' does not exist or is not a folder")
    found = walk_files(folder, recurse=recurse)
    return sorted(p for p in found.files + found.broken if is_image_file(p))


def from_folder(
    path: str | os.PathLike, train: str = "train", valid: str = "valid", test: str | None = "test"
) -> Items:
    """ImageNet layout (`train/<class>/`, `valid/<class>/`, optional `test/`) or one folder per class.

    With `train/` and `valid/` present the split is theirs; otherwise every sub-folder of
    `path` is a class and the caller splits (e.g. `valid_pct`).
    """
    root = Path(path)
    if not root.is_dir():
        raise PixclassError(f"folder '{root}' does not exist or is not a folder")
    if (root / train).is_dir() and (root / valid).is_dir():
        tr, va = _class_folders(root / train), _class_folders(root / valid)
        test_paths = image_files(root / test) if test and (root / test).is_dir() else []
        return Items(tr[0] + va[0], tr[1] + va[1], [False] * len(tr[0]) + [True] * len(va[0]), test_paths)
    # An unlabelled test/ folder beside the class folders is the test set, not a class.
    test_dir = root / test if test else None
    has_test = test_dir is not None and test_dir.is_dir()
    paths, labels = _class_folders(root, skip=test if has_test else None)
    if not paths:
        raise PixclassError(
            f"no images in class folders under '{root}': expected '{root}/<class>/<image>' "
            f"or '{root}/{train}/<class>/' and '{root}/{valid}/<class>/'"
        )
    return Items(paths, labels, test_paths=image_files(test_dir) if has_test else [])


def _class_folders(root: Path, skip: str | None = None) -> tuple[list[Path], list[str]]:
    # One walk of the whole folder, as verify does it: a class folder linked twice, or a link
    # looping back into `root`, is read once. The label is the first folder below `root`.
    found = walk_files(root, skip=[skip] if skip else ())
    paths, labels = [], []
    for f in sorted(found.files + found.broken):
        parts = f.relative_to(root).parts
        if len(parts) > 1 and is_image_file(f):
            paths.append(f)
            labels.append(parts[0])
    return paths, labels


def from_df(
    df: Any,
    path: str | os.PathLike = ".",
    folder: str | None = None,
    fn_col: str | int = 0,
    label_col: str | int = 1,
    suffix: str = "",
    valid_col: str | None = None,
    allow_outside: bool = False,
) -> Items:
    """Rows of a DataFrame: a file-name column, a label column and optionally an is-valid column.

    Args:
        df: a pandas DataFrame.
        path: the base folder; file names are relative to `path/folder`.
        fn_col, label_col: column names or positions.
        suffix: appended to each file name (e.g. ".jpg" for Planet's CSV).
        valid_col: a boolean column marking validation rows.
        allow_outside: accept names that lead outside `path/folder` (`../x.jpg`, `/abs/x.jpg`);
            refused by default, since a table from elsewhere could make training read any file.
    """
    base = Path(path) / folder if folder else Path(path)
    fn = column(df, fn_col, "file-name")
    lab = column(df, label_col, "label")
    names = fn.astype(str).tolist()
    if not suffix and names and not (base / names[0]).exists():
        suffix = _guess_suffix(base, names[0])
    paths = [base / f"{name}{suffix}" for name in names]
    if not allow_outside:
        _check_inside(base, names, paths)
    labels = [None if _missing(v) else v for v in lab.tolist()]
    is_valid = None
    if valid_col is not None:
        is_valid = [_truthy(v) for v in column(df, valid_col, "valid").tolist()]
    missing = [p for p in paths[:2000] if not p.exists()]
    if missing:
        raise PixclassError(
            f"'{missing[0]}' listed in the table does not exist ({len(missing)} missing among the "
            f"first {min(len(paths), 2000)}); check `folder`/--folder and `suffix`"
        )
    return Items(paths, labels, is_valid)


def _check_inside(base: Path, names: list[str], paths: list[Path]) -> None:
    """Refuse table rows whose file lies outside `base` by its name alone (`..`, an absolute path)."""
    root = os.path.normpath(os.path.abspath(base))
    for row, (name, p) in enumerate(zip(names, paths)):
        full = os.path.normpath(os.path.abspath(p))
        if os.path.commonpath([root, full]) != root:
            raise PixclassError(
                f"row {row + 1} of the table names '{name}', outside the image folder '{base}': "
                "fix the table, or allow it explicitly (allow_outside=True, --allow-outside)")


def _guess_suffix(base: Path, name: str) -> str:
    # Planet-style tables list "train_0" for "train_0.jpg": find the one extension that exists.
    from pixclass.data.images import IMAGE_EXTENSIONS

    found = [ext for ext in sorted(IMAGE_EXTENSIONS) if (base / f"{name}{ext}").exists()]
    return found[0] if len(found) == 1 else ""


def from_csv(csv: str | os.PathLike, path: str | os.PathLike | None = None, **kwargs: Any) -> Items:
    """Like `from_df` for a CSV file; file names are relative to the CSV's folder by default."""
    import pandas as pd

    csv = Path(csv)
    if not csv.is_file():
        raise PixclassError(f"CSV file '{csv}' does not exist")
    try:
        df = pd.read_csv(csv)
    except Exception as err:  # pandas raises many types for malformed files
        raise PixclassError(f"cannot read CSV '{csv}': {err}") from None
    return from_df(df, path=csv.parent if path is None else path, **kwargs)


def from_name_func(paths: Sequence[str | os.PathLike], label_func: Callable[[Path], Any]) -> Items:
    """Label each file with `label_func(path)`."""
    ps = [Path(p) for p in paths]
    return Items(ps, [label_func(p) for p in ps])


def from_name_re(paths: Sequence[str | os.PathLike], pat: str) -> Items:
    """Label each file with the first group of regex `pat` searched in its full path."""
    regex = re.compile(pat)

    def label(p: Path) -> str:
        m = regex.search(p.as_posix())
        if not m or not m.groups():
            raise PixclassError(f"pattern {pat!r} does not match (with a group) file name '{p}'")
        return m.group(1)

    return from_name_func(paths, label)


def from_lists(paths: Sequence[str | os.PathLike], labels: Sequence[Any]) -> Items:
    """Parallel lists of paths and labels."""
    if len(paths) != len(labels):
        raise PixclassError(f"got {len(paths)} paths but {len(labels)} labels: they must pair up")
    return Items([Path(p) for p in paths], list(labels))


def column(df: Any, col: str | int, what: str) -> Any:
    if isinstance(col, int):
        if col >= len(df.columns):
            raise PixclassError(f"the table has no {what} column number {col} (it has {len(df.columns)})")
        return df.iloc[:, col]
    if col not in df.columns:
        raise PixclassError(
            f"the table has no {what} column '{col}'; its columns are: {', '.join(map(str, df.columns))}"
        )
    return df[col]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "valid", "t", "y")
    return bool(v)
