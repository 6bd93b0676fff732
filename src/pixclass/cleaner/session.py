"""One cleaning session: the items' decisions (keep, relabel, trash, file into a class), undo, and
what they do to the files.

Owns `CleaningSession`: every decision is made on disk first (a move into the trash or a class
folder, never overwriting), then written to the journal (`ROOT/.pixclass-clean/decisions.jsonl`),
then `cleaned.csv` is rewritten atomically. A new session replays the journal over the folder as it
now is, so a reload or a restarted server shows the same state and undo goes on where it stopped.

- trash: `ROOT/.pixclass-trash/<relative path>` (a free name if taken) and a row in its
  `manifest.csv` (original,trashed,time); nothing is ever deleted.
- relabel: changes the label in `cleaned.csv`; with `apply` (folder datasets) the file also moves
  into the new class folder (of its split), never overwriting.
- file (sort mode): a loose image moves into `ROOT/CLASS/`.
- undo: takes back the last decision still standing; a moved file goes back to exactly where it
  was, or the undo is refused (`Conflict`) when another file has taken that name.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pixclass.cleaner.journal import Journal, replay
from pixclass.cleaner.paths import PathTaken, confine, move_exactly, move_to_free_name
from pixclass.cleaner.settings import CleanerSettings
from pixclass.cleaner.source import SPLITS, Dataset
from pixclass.errors import PixclassError
from pixclass.files import atomic_write_text

WORK_DIR = ".pixclass-clean"  # hidden: training and verify never see it
TRASH_DIR = ".pixclass-trash"
CLEANED_CSV = "cleaned.csv"  # fastai's name and columns (name,label), in the root
ACTIONS = ("keep", "relabel", "trash", "file")
MAX_LABEL_CHARS = 100  # a label becomes a folder name with --apply


class Conflict(PixclassError):
    """A decision or undo that cannot be done as things are (HTTP 409)."""


class NotFound(PixclassError):
    """No item has that id or path (HTTP 404)."""


class BadRequest(PixclassError):
    """A decision that makes no sense (HTTP 400)."""


@dataclass(frozen=True)
class ItemState:
    """An item now: `key` is its name as first listed (it never changes), `location` where its file is."""

    key: str
    split: str | None
    original: tuple[str, ...]  # labels as first listed
    labels: tuple[str, ...]  # labels now
    status: str  # "" undecided, kept, relabelled, trashed, filed
    location: str  # relative to the root ('/'); under .pixclass-trash/ when trashed
    loose: bool  # listed loose in the root, unlabelled: sort mode's images

    def public(self, index: int) -> dict[str, Any]:
        return {"id": index, **asdict(self)}


class CleaningSession:
    """The decisions on one dataset. Thread-safe; `close()` releases the folder for another session."""

    def __init__(self, dataset: Dataset, settings: CleanerSettings | None = None):
        self.dataset, self.settings = dataset, settings or CleanerSettings()
        self.root = dataset.root
        self.notes: list[str] = list(dataset.notes)
        self._lock = threading.Lock()
        self.journal = Journal(self.root / WORK_DIR / "decisions.jsonl")
        try:
            self.items = self._restore()
            self.cleaned_csv = self._cleaned_csv_path()
        except BaseException:
            self.journal.close()
            raise
        self._index = {item.key: i for i, item in enumerate(self.items)}
        self.classes = sorted(set(dataset.classes) | {t for it in self.items for t in it.labels})
        self.sort_classes = list(self.settings.sort_classes) or list(dataset.classes)
        self._trash_log = None
        if not self.sort_classes and any(it.loose for it in self.items):
            self.journal.close()
            raise PixclassError(f"'{self.root}' holds loose images but no class folders to sort them into: "
                                "name the classes with --sort CLASS1,CLASS2,...")

    # -- reading ---------------------------------------------------------------------------------

    def item(self, ref: int | str) -> int:
        """The index of the item with id `ref`, or whose file is now at the relative path `ref`."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            if 0 <= ref < len(self.items):
                return ref
            raise NotFound(f"no item {ref}: ids go from 0 to {len(self.items) - 1}")
        if isinstance(ref, str):
            path = confine(self.root, ref)
            rel = path.relative_to(self.root).as_posix()
            for i, it in enumerate(self.items):
                if it.location == rel:
                    return i
            raise NotFound(f"no image '{ref}' in the dataset folder")
        raise BadRequest("give the item as its id (a number) or its path relative to the dataset folder")

    def file_of(self, index: int) -> Path:
        """The file of item `index`, checked to lie inside the root."""
        path = confine(self.root, self.items[index].location)
        if not path.is_file():
            raise NotFound(f"the file of '{self.items[index].key}' is gone ({self.items[index].location})")
        return path

    def undo_depth(self) -> int:
        return len(replay(self.journal.entries))

    def sort_mode(self) -> bool:
        return bool(self.settings.sort_classes) or any(it.loose for it in self.items)

    # -- deciding --------------------------------------------------------------------------------

    def decide(self, ref: int | str, action: str, labels: list[str] | None = None) -> dict[str, Any]:
        """Keep, relabel (to `labels`), trash, or file (into the class `labels[0]`) one item."""
        if action not in ACTIONS:
            raise BadRequest(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        with self._lock:
            i = self.item(ref)
            it = self.items[i]
            if it.status == "trashed":
                raise Conflict(f"'{it.key}' is in the trash: undo to bring it back first")
            if action == "keep":
                after = replace(it, status="kept")
            elif action == "trash":
                after = self._trash(it)
            else:
                after = self._relabel(it, self._check_labels(labels, single=action == "file"), action == "file")
            self._record({"op": "decide", "action": action, "item": it.key, "split": it.split,
                          "original": list(it.original), "loose": it.loose,
                          "before": _snapshot(it), "after": _snapshot(after)})
            self.items[i] = after
            self.classes = sorted(set(self.classes) | set(after.labels))
            self._write_cleaned()
            return after.public(i)

    def undo(self) -> dict[str, Any]:
        """Take back the last decision still standing; returns the item as it is again."""
        with self._lock:
            stack = replay(self.journal.entries)
            if not stack:
                raise Conflict("nothing to undo")
            last = stack[-1]
            i = self._index.get(last["item"])
            if i is None:
                raise Conflict(f"cannot undo the decision on '{last['item']}': its file is gone")
            it, before = self.items[i], last["before"]
            if it.location != before["location"]:
                try:
                    move_exactly(self.root / it.location, confine(self.root, before["location"]))
                except PathTaken:
                    raise Conflict(f"cannot undo: '{before['location']}' exists again; move or rename that "
                                   "file, then undo") from None
                except FileNotFoundError:
                    raise Conflict(f"cannot undo: the file '{it.location}' is gone") from None
            restored = replace(it, labels=tuple(before["labels"]), status=before["status"],
                               location=before["location"])
            self._record({"op": "undo", "of": last["seq"], "item": it.key})
            self.items[i] = restored
            self._write_cleaned()
            return restored.public(i)

    def close(self) -> None:
        self.journal.close()
        if self._trash_log is not None:
            self._trash_log.close()

    # -- the pieces ------------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        self.journal.append({**entry, "time": _now()})

    def _check_labels(self, labels: list[str] | None, single: bool) -> tuple[str, ...]:
        if not isinstance(labels, list) or not all(isinstance(t, str) for t in labels):
            raise BadRequest("give the new labels as a list of class names")
        clean = tuple(dict.fromkeys(t.strip() for t in labels if t.strip()))
        if (single or not self.dataset.multi) and len(clean) != 1:
            raise BadRequest(f"give exactly one class, not {len(clean)}")
        for label in clean:
            if (label.startswith(".") or "/" in label or "\\" in label or len(label) > MAX_LABEL_CHARS
                    or any(ch in label for ch in "\x00\r\n") or (self.dataset.multi and " " in label)):
                raise BadRequest(f"bad class name {label!r}: it must be a folder name (no '/', not starting "
                                 f"with '.', at most {MAX_LABEL_CHARS} characters"
                                 f"{', no spaces' if self.dataset.multi else ''})")
        return clean

    def _relabel(self, it: ItemState, labels: tuple[str, ...], filing: bool) -> ItemState:
        if filing and not it.loose:
            raise BadRequest(f"'{it.key}' is not a loose image: relabel it instead")
        status = "filed" if filing else ("relabelled" if labels != it.original else "kept")
        moves = filing or (self.settings.apply and self.dataset.layout != "csv" and not self.dataset.multi)
        location = it.location
        if moves:
            folder = self._class_folder(it, labels[0])
            src = confine(self.root, it.location)
            if src.parent != folder:
                location = self._rel(move_to_free_name(src, folder / src.name))
        return replace(it, labels=labels, status=status, location=location)

    def _class_folder(self, it: ItemState, label: str) -> Path:
        if self.dataset.layout == "splits":
            return self.root / (it.split if it.split in SPLITS else SPLITS[0]) / label
        return self.root / label

    def _trash(self, it: ItemState) -> ItemState:
        from pixclass.collect.quarantine import CsvLog

        src = confine(self.root, it.location)
        dest = move_to_free_name(src, self.root / TRASH_DIR / it.location)
        if self._trash_log is None:
            self._trash_log = CsvLog(self.root / TRASH_DIR / "manifest.csv", ["original", "trashed", "time"])
        self._trash_log.append([it.location, self._rel(dest), _now()])
        return replace(it, status="trashed", location=self._rel(dest))

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _restore(self) -> list[ItemState]:
        """The items: the folder as listed now, with the standing decisions of the journal over it."""
        last: dict[str, dict[str, Any]] = {}
        for entry in replay(self.journal.entries):
            last[entry["item"]] = entry
        listed = {item.name: item for item in self.dataset.items}
        items: dict[str, ItemState] = {}
        claimed: set[str] = set()
        for key, entry in last.items():
            after = entry["after"]
            here = after["location"] in listed or (after["status"] == "trashed"
                                                   and (self.root / after["location"]).is_file())
            if not here:
                self.notes.append(f"'{key}' was decided on but its file is no longer at {after['location']}")
                continue
            claimed.add(after["location"])
            items[key] = ItemState(key, entry["split"], tuple(entry["original"]), tuple(after["labels"]),
                                   after["status"], after["location"], bool(entry.get("loose")))
        for name, item in listed.items():
            if name in claimed:
                continue
            if name in items:
                self.notes.append(f"'{name}' is a new file where a moved image was: not shown")
                continue
            loose = self.dataset.layout != "csv" and not item.labels and item.split is None and "/" not in name
            items[name] = ItemState(name, item.split, item.labels, item.labels, "", name, loose)
        return [items[k] for k in sorted(items)]

    def _cleaned_csv_path(self) -> Path:
        """`ROOT/cleaned.csv`, unless a file of that name was there before this cleaner: then the first
        free `cleaned-N.csv` (remembered in `.pixclass-clean/session.json`, never someone else's file)."""
        record = self.root / WORK_DIR / "session.json"
        try:
            name = json.loads(record.read_text(encoding="utf-8")).get("cleaned_csv")
        except (OSError, ValueError, AttributeError):
            name = None
        if isinstance(name, str) and "/" not in name and name.endswith(".csv"):
            return self.root / name
        path = self.root / CLEANED_CSV
        n = 2
        while path.exists():
            path, n = self.root / f"cleaned-{n}.csv", n + 1
        atomic_write_text(record, json.dumps({"cleaned_csv": path.name}) + "\n")
        return path

    def cleaned_rows(self) -> list[tuple[str, str]]:
        """`cleaned.csv`'s rows: every labelled image not trashed, by name, where its file is now (an unlabelled
        test or loose image is left out until it gets a label)."""
        rows = []
        for it in self.items:
            if it.status == "trashed" or (not it.labels and not self.dataset.multi):
                continue
            rows.append((it.location, " ".join(it.labels)))
        return sorted(rows)

    def _write_cleaned(self) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["name", "label"])
        writer.writerows(self.cleaned_rows())
        atomic_write_text(self.cleaned_csv, text.getvalue())


def _snapshot(it: ItemState) -> dict[str, Any]:
    return {"labels": list(it.labels), "status": it.status, "location": it.location}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
