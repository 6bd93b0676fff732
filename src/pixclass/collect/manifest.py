"""The download manifest: one CSV row per URL attempt, appended so a kill never corrupts it.

`DIR/manifest.csv` is the memory of `download_images`: a rerun skips URLs whose latest row is
`ok` (and whose file still exists) or `duplicate`, and new content is checked against the
sha256 of every kept file. Rows are written with one `write()` and flushed, so an interrupted
run leaves at most one partial last line, which the reader ignores.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pixclass.errors import PixclassError

STATUSES = ("ok", "duplicate", "failed")


@dataclass
class ManifestRecord:
    """What happened to one URL. `sha256` is of the bytes as downloaded (before any resize)."""

    url: str
    file: str = ""
    sha256: str = ""
    bytes: int = 0
    width: int = 0
    height: int = 0
    status: str = "failed"
    error: str = ""
    provider: str = ""
    query: str = ""
    license: str = ""
    label: str = ""


FIELDS = [f.name for f in fields(ManifestRecord)]
_INT_FIELDS = {"bytes", "width", "height"}


def read_manifest(path: str | Path) -> list[ManifestRecord]:
    """Read every complete row of a manifest; a missing file is an empty manifest.

    Args:
        path: the `manifest.csv` file.
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return []
        if "url" not in reader.fieldnames or "status" not in reader.fieldnames:
            raise PixclassError(
                f"'{path}' is not a pixclass manifest (no url/status columns). "
                "Move it away or choose another --out folder."
            )
        return [rec for row in reader if (rec := _parse_row(row)) is not None]


def _parse_row(row: dict[str, str | None]) -> ManifestRecord | None:
    # A partial last line (killed mid-write) has missing fields or an unknown status: skip it.
    if None in row or row.get("status") not in STATUSES or not row.get("url"):
        return None
    values: dict[str, object] = {}
    for name in FIELDS:
        raw = row.get(name) or ""
        try:
            values[name] = int(raw or 0) if name in _INT_FIELDS else raw
        except ValueError:
            return None
    return ManifestRecord(**values)  # type: ignore[arg-type]


class ManifestWriter:
    """Appends records to a manifest, one flushed line each.

    Args:
        path: the `manifest.csv` file (created with a header if absent).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        needs_newline = not new and _last_byte(self.path) != b"\n"
        self._fh = self.path.open("a", newline="", encoding="utf-8")
        if needs_newline:  # finish a partial line left by a kill, so ours starts clean
            self._fh.write("\n")
        if new:
            self._write_line(FIELDS)

    def write(self, record: ManifestRecord) -> None:
        row = asdict(record)
        self._write_line([row[name] for name in FIELDS])

    def _write_line(self, values: list[object]) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerow(values)
        self._fh.write(buf.getvalue())  # one write per row
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1)
