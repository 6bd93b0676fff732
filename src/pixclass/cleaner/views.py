"""What ranks and groups the items: label-issue scores from `RUN/label_issues.csv` and duplicate groups
from `RUN/dupes.csv` or, without it, from `pixclass.collect.dupes.find_duplicates`.

Owns `read_label_issues` (item key → score, suggested, loss) and `Duplicates` (the groups, found in
a background thread so the page opens at once). Paths in those files are matched to items by their
real path, whichever way the files spell them.
"""

from __future__ import annotations

import csv
import math
import os
import threading
from pathlib import Path
from typing import Any

from pixclass.cleaner.session import CleaningSession
from pixclass.errors import PixclassError
from pixclass.train.runfolder import DUPES, LABEL_ISSUES

LABEL_ISSUES_COMMAND = "pixclass label-issues RUN"


def _real_index(session: CleaningSession) -> dict[str, str]:
    """Real path of each item's file → the item's key."""
    return {os.path.realpath(session.root / it.location): it.key for it in session.items}


def _real(path: str, session: CleaningSession, base: Path | None) -> str:
    p = Path(path)
    if not p.is_absolute():  # relative: to the root, else to the run folder or the current folder
        for folder in (session.root, base, Path.cwd()):
            if folder is not None and (folder / p).exists():
                p = folder / p
                break
    return os.path.realpath(p)


def read_label_issues(session: CleaningSession) -> dict[str, Any]:
    """{"file": path or None, "command": how to make it, "scores": {key: {score, suggested, loss}},
    "unmatched": rows naming no item}."""
    run = session.dataset.run
    path = run / LABEL_ISSUES if run is not None else None
    out: dict[str, Any] = {"file": None, "command": LABEL_ISSUES_COMMAND.replace("RUN", str(run or "RUN")),
                           "scores": {}, "unmatched": 0}
    if path is None or not path.is_file():
        return out
    index = _real_index(session)
    for row in _rows(path, "pixclass label-issues RUN"):
        key = index.get(_real(row.get("path") or "", session, run))
        if key is None:
            out["unmatched"] += 1
            continue
        out["scores"][key] = {"score": _number(row.get("score")), "loss": _number(row.get("loss")),
                              "suggested": (row.get("suggested") or "").split() if session.dataset.multi
                              else row.get("suggested") or None,
                              "issue": (row.get("issue") or "").strip() == "1",
                              "run_split": row.get("split") or None}  # train/valid as the run split them
    out["file"] = str(path)
    return out


def _rows(path: Path, remake: str) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, or a one-line error saying how to make it again."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PixclassError(f"cannot read '{path}' ({err}): make it again with '{remake}' or move it away") from None


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value  # JSON has no NaN


class Duplicates:
    """Duplicate groups of a session's images: from RUN/dupes.csv, else found in a background thread."""

    def __init__(self, session: CleaningSession, find: bool = True, workers: int | None = None):
        self.session, self.workers = session, workers
        self.status, self.source, self.error = "off", None, None
        self.groups: list[dict[str, Any]] = []
        run = session.dataset.run
        if run is not None and (run / DUPES).is_file():
            self.source = str(run / DUPES)
            self.groups = self._group(self._read(run / DUPES))
            self.status = "ready"
        elif find:
            self.status, self.source = "finding", "find_duplicates"
            threading.Thread(target=self._find, name="pixclass-dupes", daemon=True).start()

    def answer(self) -> dict[str, Any]:
        return {"status": self.status, "source": self.source, "error": self.error, "groups": self.groups}

    def _read(self, path: Path) -> list[tuple[str, str, str, float]]:
        index = _real_index(self.session)
        pairs = []
        for row in _rows(path, "pixclass dupes RUN --csv RUN/dupes.csv"):
            a = index.get(_real(row.get("a") or "", self.session, self.session.dataset.run))
            b = index.get(_real(row.get("b") or "", self.session, self.session.dataset.run))
            if a and b and a != b:
                # Kept as written: hash pairs count bits, embedding pairs (`method`) give 1 - cosine.
                pairs.append((a, b, row.get("kind") or "near", _number(row.get("distance")) or 0))
        return pairs

    def _find(self) -> None:
        from pixclass.collect.dupes import find_duplicates

        try:
            s = self.session
            live = [it for it in s.items if it.status != "trashed"]
            by_file = {s.root / it.location: it for it in live}
            report = find_duplicates(list(by_file), split_of=lambda p: by_file[p].split, workers=self.workers)
            pairs = [(by_file[p.a].key, by_file[p.b].key, p.kind, p.distance) for p in report.pairs]
            self.groups, self.status = self._group(pairs), "ready"
        except Exception as err:  # noqa: BLE001 - the other views work without it; the page says why
            self.error, self.status = str(err).splitlines()[0] if str(err) else type(err).__name__, "failed"

    def _group(self, pairs: list[tuple[str, str, str, float]]) -> list[dict[str, Any]]:
        """Connected groups of pairs (union-find), closest first; a group with a leak is a leak."""
        parent: dict[str, str] = {}

        def top(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b, _, _ in pairs:
            parent[top(a)] = top(b)
        groups: dict[str, dict[str, Any]] = {}
        for a, b, kind, distance in pairs:
            g = groups.setdefault(top(a), {"keys": set(), "kinds": set(), "distance": distance})
            g["keys"] |= {a, b}
            g["kinds"].add(kind)
            g["distance"] = min(g["distance"], distance)
        ids = {it.key: i for i, it in enumerate(self.session.items)}
        out = [{"ids": sorted(ids[k] for k in g["keys"] if k in ids), "distance": g["distance"],
                "kind": "leak" if "leak" in g["kinds"] else ("exact" if g["kinds"] == {"exact"} else "near")}
               for g in groups.values()]
        return sorted((g for g in out if len(g["ids"]) > 1), key=lambda g: (g["distance"], g["ids"]))
