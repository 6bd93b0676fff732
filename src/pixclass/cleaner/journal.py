"""The cleaner's memory: an append-only JSON-lines file of decisions and undos, each line on disk
(flushed and fsync'd) before the page hears of it, so a reload or a crash of the server loses nothing.

Owns `Journal` (append, read back, hold the folder against a second cleaner) and `replay`
(the decisions still standing after the undos). A line torn by a crash mid-write is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from pixclass.errors import PixclassError


class Journal:
    """`path` (e.g. `ROOT/.pixclass-clean/decisions.jsonl`), locked while this object is open."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = path.open("a+", encoding="utf-8")
        _lock(self._fh, path)
        self.entries = self._read()
        self.next_seq = max((e.get("seq", 0) for e in self.entries), default=0) + 1

    def _read(self) -> list[dict[str, Any]]:
        assert self._fh is not None
        self._fh.seek(0)
        entries = []
        for line in self._fh.read().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # a line a crash cut short: its decision never reached the page
                continue
            if isinstance(entry, dict) and entry.get("op") in ("decide", "undo"):
                entries.append(entry)
        return entries

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Write `entry` (given the next `seq`) as one line, on disk before this returns; returns it."""
        if self._fh is None:
            raise PixclassError(f"the journal '{self.path}' is closed")
        entry = {"seq": self.next_seq, **entry}
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.entries.append(entry)
        self.next_seq += 1
        return entry

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # also releases the lock
            self._fh = None


def replay(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decisions still standing, oldest first: each undo takes back the decision it names."""
    stack: list[dict[str, Any]] = []
    for entry in entries:
        if entry["op"] == "decide":
            stack.append(entry)
        elif stack and stack[-1].get("seq") == entry.get("of"):
            stack.pop()
    return stack


def _lock(fh: IO[str], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise PixclassError(f"another 'pixclass clean' is cleaning this folder ({path} is locked): "
                            "use that one's page, or stop it first") from None
