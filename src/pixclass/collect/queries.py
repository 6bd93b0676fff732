"""Reading a query CSV: which classes to collect and what to search for each.

Two forms, mixable in one file (blank lines and `#` comments skipped, a header row optional):

    coral snake,coral snake;micrurus fulvius      FastClass: class, then `;`-separated terms
    kingsnake,scarlet kingsnake                   plain `class,query`; rows of one class add up
    milk snake                                    a class alone is its own query

Extra columns are more search terms. Order is kept, duplicates are dropped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from pixclass.collect.naming import safe_label
from pixclass.errors import PixclassError

_HEADER_WORDS = {"class", "classname", "class_name", "label", "folder", "name"}


@dataclass
class ClassQueries:
    """One class to collect: its folder name and its search terms."""

    label: str
    queries: list[str] = field(default_factory=list)


def read_queries(path: str | Path) -> list[ClassQueries]:
    """Parse a query CSV into classes with their search terms, in file order.

    Args:
        path: the CSV file (see the module docstring for its forms).
    """
    path = Path(path)
    if not path.is_file():
        raise PixclassError(f"cannot read queries '{path}': no such file")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    classes: dict[str, ClassQueries] = {}
    for lineno, row in enumerate(csv.reader(lines), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and cells[0].lower() in _HEADER_WORDS:
            continue
        label = cells[0]
        if not label:
            raise PixclassError(f"'{path}' line {lineno}: the first column (class name) is empty")
        try:
            safe_label(label)
        except PixclassError as err:
            raise PixclassError(f"'{path}' line {lineno}: {err}") from None
        terms = [t.strip() for cell in cells[1:] for t in cell.split(";") if t.strip()] or [label]
        entry = classes.setdefault(label, ClassQueries(label))
        entry.queries += [t for t in terms if t not in entry.queries]
    if not classes:
        raise PixclassError(f"'{path}' has no classes: write one 'class,search terms' row per class")
    return list(classes.values())
