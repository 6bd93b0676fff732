"""Reading URL lists: a text file (one URL a line), a CSV (`url[,label]`) or a Python list.

Every entry becomes a `UrlItem`; blank lines and `#` comments are skipped, the same URL is kept
once, and a line that is not an http(s) URL is a clear error naming the file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pixclass.errors import PixclassError


@dataclass(frozen=True)
class UrlItem:
    """One URL to download, with where it came from (all optional but the URL)."""

    url: str
    label: str = ""
    provider: str = ""
    query: str = ""
    license: str = ""


def is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def read_url_list(source: str | Path | Iterable[str | UrlItem]) -> list[UrlItem]:
    """Turn a URL file or a list of URLs into unique `UrlItem`s, in order.

    Args:
        source: a `.txt` file (one URL a line), a `.csv` file (`url[,label]`, header optional),
            one URL, or an iterable of URL strings / `UrlItem`s.
    """
    if isinstance(source, str) and is_http_url(source.strip()):
        return [UrlItem(url=source.strip())]  # one URL, not a file name
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise PixclassError(f"cannot read URL list '{path}': no such file")
        items = _read_file(path)
    else:
        items = [s if isinstance(s, UrlItem) else _checked(str(s).strip(), "list", 0) for s in source]
    return _unique(items)


def _read_file(path: Path) -> list[UrlItem]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    # Only a .csv is split on commas: URLs themselves may contain commas.
    lines = text.splitlines()
    rows = list(csv.reader(lines)) if path.suffix.lower() == ".csv" else [[ln] for ln in lines]
    items: list[UrlItem] = []
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        if lineno == 1 and cells[0].lower() == "url":  # header row
            continue
        label = cells[1] if len(cells) > 1 else ""
        items.append(_checked(cells[0], str(path), lineno, label))
    if not items:
        raise PixclassError(f"URL list '{path}' has no URLs: put one http(s) URL on each line")
    return items


def _checked(url: str, where: str, lineno: int, label: str = "") -> UrlItem:
    if not is_http_url(url):
        at = f"'{where}' line {lineno}" if lineno else "the URL list"
        raise PixclassError(f"{at}: '{url[:80]}' is not an http(s) URL; fix or remove that line")
    return UrlItem(url=url, label=label)


def _unique(items: list[UrlItem]) -> list[UrlItem]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.url not in seen:
            seen.add(item.url)
            out.append(item)
    return out
