"""The download manifest: one CSV row per URL event, appended so a kill never corrupts it.

`DIR/manifest.csv` is the memory of `download_images`. Before a downloaded file is written, a
`pending` row names the file it is about to become (and the sha256 of the downloaded bytes); once
the file is in place an `ok` row follows. A rerun reads the latest row of each URL: `ok` (file
present) and `duplicate` are done, a `pending` row whose file exists completely is adopted as `ok`,
anything else is downloaded again.

Each row is one line, written with one `write()` and flushed, so a kill leaves at most one partial
last line. The reader parses every line on its own and skips what it cannot parse: a partial
line, garbage, a row with the wrong number of fields or an unknown status, a kept file outside
the folder or outside its class folder (the label cut short by a kill). A file whose first line
has no `url` and `status` columns is not a manifest: a one-line `PixclassError`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath

from pixclass.collect.naming import safe_label
from pixclass.errors import PixclassError

MANIFEST = "manifest.csv"
STATUSES = ("ok", "duplicate", "failed", "pending")


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
    """Read every complete row of a manifest, in order; a missing or empty file is an empty manifest.

    Args:
        path: the `manifest.csv` file.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = _read_lines(path)
    found = _header(lines, path)
    if found is None:
        return []
    header, start = found
    return [rec for line in lines[start + 1:] if (rec := _parse_line(line, header)) is not None]


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PixclassError(f"cannot read manifest '{path}': {err.strerror or err}") from None
    # Invalid UTF-8 (a multi-byte character cut by a kill, a binary file) becomes U+FFFD.
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff").split("\n")


def _header(lines: list[str], path: Path) -> tuple[list[str], int] | None:
    """The column names on the first non-blank line, and that line's index; None for a blank file."""
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return None
    names = _split(lines[start])
    if names is None or "url" not in names or "status" not in names:
        raise PixclassError(
            f"'{path}' is not a pixclass manifest (no url/status columns). "
            "Move it away or choose another --out folder."
        )
    return names, start


def _split(line: str) -> list[str] | None:
    """The fields of one CSV line, or None when it is not one complete line (an open quote, ...)."""
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:  # an unclosed quote, a field over the size limit, a stray line break
        return None
    return rows[0] if len(rows) == 1 else None


def _parse_line(line: str, header: list[str]) -> ManifestRecord | None:
    values = _split(line)
    if values is None or len(values) != len(header):
        return None
    row = dict(zip(header, values))
    if row["status"] not in STATUSES or not row["url"]:
        return None
    parsed: dict[str, object] = {}
    for name in FIELDS:
        raw = row.get(name, "")
        try:
            parsed[name] = int(raw or 0) if name in _INT_FIELDS else raw
        except ValueError:
            return None
    record = ManifestRecord(**parsed)  # type: ignore[arg-type]
    return record if _file_fits(record) else None


def _file_fits(record: ManifestRecord) -> bool:
    """A named file must be `NAME` or `CLASS/NAME`; a kept one must sit in its label's folder."""
    if not record.file:
        return record.status not in ("ok", "pending")
    parts = PurePosixPath(record.file).parts
    if "\\" in record.file or not 1 <= len(parts) <= 2 or any(p in ("", ".", "..", "/") for p in parts):
        return False
    if record.status not in ("ok", "pending"):
        return True
    try:
        folder = safe_label(record.label) if record.label else ""
    except PixclassError:
        return False
    # A label cut short by a kill (the last field of a partial line) names another folder.
    return (parts[0] if len(parts) == 2 else "") == folder


def pending_complete(out: str | Path, record: ManifestRecord) -> bool:
    """Whether the file a pending row announced is in `out`, whole (it appears whole or not at all)."""
    try:
        return (Path(out) / record.file).stat().st_size == record.bytes
    except OSError:
        return False


def count_kept(out: str | Path) -> int:
    """Images in `out` a rerun will not download again: latest row `ok`, or `pending` with its file whole.

    Args:
        out: the folder given to `download_images` (holding `manifest.csv`).
    """
    out = Path(out)
    latest = {rec.url: rec for rec in read_manifest(out / MANIFEST)}
    return sum(1 for rec in latest.values()
               if (rec.status == "ok" and (out / rec.file).is_file())
               or (rec.status == "pending" and pending_complete(out, rec)))


def describe_kept(out: str | Path) -> str:
    """What an interrupted run leaves in `out`, for the one line after Ctrl-C; never raises.

    Args:
        out: the folder given to `download_images`.
    """
    manifest = Path(out) / MANIFEST
    try:
        n = count_kept(out)
    except (OSError, PixclassError):
        return f"see {manifest}"
    if n == 0:
        return "no image saved yet"
    return f"{n} image{'s' if n != 1 else ''} saved and recorded in {manifest}"


class ManifestWriter:
    """Appends records to a manifest, one flushed line each; one writer per folder at a time.

    Args:
        path: the `manifest.csv` file (created with a header if absent or empty).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", newline="", encoding="utf-8")
        try:
            _lock(self._fh, self.path)
            self.columns = self._start()
        except BaseException:
            self._fh.close()
            raise

    def _start(self) -> list[str]:
        """Check the existing header (rows follow its column order) or write ours."""
        found = _header(_read_lines(self.path), self.path) if self.path.stat().st_size else None
        if found is not None:
            missing = [name for name in FIELDS if name not in found[0]]
            if missing:
                raise PixclassError(
                    f"'{self.path}' has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}, "
                    "so pixclass cannot add to it. Move it away or choose another --out folder."
                )
        if self.path.stat().st_size and _last_byte(self.path) != b"\n":
            self._fh.write("\n")  # finish a partial line left by a kill, so ours starts clean
            self._fh.flush()
        if found is None:
            self._write_line(FIELDS)
            return list(FIELDS)
        return found[0]

    def write(self, record: ManifestRecord) -> None:
        row = asdict(record)
        self._write_line([row.get(name, "") for name in self.columns])

    def _write_line(self, values: list[object]) -> None:
        # One row is one line: line breaks inside a value (an error message) become spaces.
        flat = [v.replace("\r\n", " ").replace("\r", " ").replace("\n", " ") if isinstance(v, str) else v
                for v in values]
        buf = io.StringIO()
        csv.writer(buf).writerow(flat)
        self._fh.write(buf.getvalue())  # one write per row
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()  # also releases the lock

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(fh: io.TextIOBase, path: Path) -> None:
    """Refuse a second writer: two runs into one folder would interleave rows and file names."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PixclassError(
            f"'{path}' is in use by another pixclass run writing to the same folder; "
            "wait for it to finish or choose another --out folder."
        ) from None
    except OSError:  # a file system without locks (some network mounts): carry on unlocked
        return


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1)
