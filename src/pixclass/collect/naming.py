"""Safe local names for downloaded files and class folders.

A name comes from the URL's last path segment, reduced to `[A-Za-z0-9._-]` (no separators, no
leading dots, no device names), or from the content hash when nothing usable is left. Class
labels keep letters, digits, spaces, `-`, `_` and `.`; nothing can climb out of the output folder.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from pixclass.errors import PixclassError

_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
MAX_STEM = 64


def safe_stem(url: str, fallback: str) -> str:
    """A file stem (no extension) derived from a URL, or `fallback` when none is usable.

    Args:
        url: the image URL.
        fallback: used when the URL path has no usable name (e.g. a content-hash prefix).
    """
    path = unquote(urlsplit(url).path)
    last = re.split(r"[/\\]", path)[-1]  # a decoded %2F or a backslash is still a separator
    stem = last.rsplit(".", 1)[0] if "." in last.lstrip(".") else last
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:MAX_STEM].rstrip("._-")
    if not stem or stem.upper().split(".")[0] in _WINDOWS_DEVICES:
        return fallback
    return stem


def safe_label(label: str) -> str:
    """A class name made safe as one folder name (raises if nothing sensible is left).

    Args:
        label: the class name from a URL CSV or a query CSV.
    """
    name = re.sub(r"[^\w .-]+", "_", label).strip(" .")
    name = re.sub(r"\s+", " ", name)[:100]
    if not name or name.upper() in _WINDOWS_DEVICES or set(name) <= {"_"}:
        raise PixclassError(f"class name '{label}' cannot be a folder name; use letters or digits")
    return name
