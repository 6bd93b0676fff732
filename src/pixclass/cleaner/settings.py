"""What one cleaner may do and who may reach it: `CleanerSettings`, and the exposure rule.

Importing this module is cheap: no FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixclass.errors import PixclassError
from pixclass.server.settings import is_loopback


@dataclass(frozen=True)
class CleanerSettings:
    """The choices of one cleaner. Every field has a default; override by name."""

    # Relabels also move files between class folders (never overwriting); undo moves them back.
    # Off by default: the decisions then only change `cleaned.csv` (and trash moves files).
    apply: bool = False
    # When set, every /api/ call needs it (`X-Token: T`, `Authorization: Bearer T` or `?token=T`).
    token: str | None = None
    # Sort mode's classes, in the order of the number keys 1..9 (empty: the class folders there are).
    sort_classes: tuple[str, ...] = ()
    # Changes (POST) whose Origin header names another host than the request's are refused (a page of
    # another site posting to 127.0.0.1). Off only behind a proxy that rewrites Host (notebooks).
    check_origin: bool = True
    # Without RUN/dupes.csv, look for duplicates in a background thread at start-up.
    find_dupes: bool = True
    dupes_workers: int | None = None  # processes hashing images (default: all cores)


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve the cleaner beyond this machine without a token: it moves files.

    Raises:
        PixclassError: one line saying why and what to pass.
    """
    if not token and not is_loopback(host):
        raise PixclassError(f"refusing to serve the cleaner on {host} without a token: anyone who can reach "
                            "it could move your files. Pass --token T (then open the URL with ?token=T), "
                            "or bind to 127.0.0.1")
