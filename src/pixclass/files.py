"""Atomic file writes shared by every layer: a kill never leaves a half-written file.

`atomic_write(path, write)` lets `write` fill a temporary file in the same folder, then
renames it over `path` (a same-filesystem rename is atomic). The result gets the permissions
any new file of the process gets (0666 less the umask), not `mkstemp`'s private 0600.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (threads may be running)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# The temporary names `atomic_write` makes: `.NAME.` + mkstemp's 8 characters + `.tmp`.
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then rename the temporary file over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed `atomic_write` left in `folder` (call it holding the
    folder's lock, so no live write is removed); returns what was removed."""
    folder = Path(folder)
    stale = [p for p in folder.iterdir() if p.is_file() and _TEMP_NAME.fullmatch(p.name)] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
