"""Helpers of the cleaner tests: small datasets on disk, a real uvicorn server in a thread, a browser.

(A module of its own, not conftest: test directories without `__init__.py` would all import some
`conftest`.)
"""

from __future__ import annotations

from pathlib import Path

from imagefiles import CLASS_COLOURS, save_image
from webapps import running_uvicorn


def colour_folders(root: Path, n: int = 3) -> Path:
    """`root/<blue|green|red>/<colour>_<i>.<jpg|png>`, n per class, distinct pictures."""
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(n):
            save_image(root / name / f"{name}_{i}.{'jpg' if i % 2 == 0 else 'png'}", colour, 100 * c + i)
    return root


def loose_images(root: Path, names: list[str]) -> Path:
    """Unlabelled images lying loose in `root`."""
    for i, name in enumerate(names):
        save_image(root / name, list(CLASS_COLOURS.values())[i % 3], 900 + i)
    return root


def csv_rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def running_app(app):
    """A real uvicorn server for a cleaner app on 127.0.0.1 (`webapps.running_uvicorn`); yields its URL."""
    return running_uvicorn(app, ready="/")
