"""Reading a `multipart/form-data` upload under the server's limits, while it streams in.

Owns `read_uploads` and `UploadRejected`. Nothing is trusted: a Content-Length over the limit is
refused before a byte of the body is read, and the bytes are counted as they arrive (per file and
per request), so a client that lies about Content-Length or sends a chunked body is stopped as soon
as it passes a limit, never after the server has held it all. Files are kept in memory, which the
limits bound. Uses python-multipart's streaming parser directly (Starlette's `request.form()` can
cap the number of files but not their size).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from pixclass.server.settings import MiB, ServerSettings

FIELD = "file"  # the multipart field that carries images (repeat it for several)


@dataclass
class Upload:
    """One uploaded file: the name the client gave it and its bytes."""

    name: str
    data: bytes


class UploadRejected(Exception):
    """A request the server refuses: HTTP `status`, a one-line `message`, the `file` it concerns.

    `kind` names the rule for metrics ("too_large", "too_many_files", "bad_request", ...).
    """

    def __init__(self, status: int, message: str, kind: str, file: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.file = status, message, kind, file


def size_text(n: int) -> str:
    """`n` bytes for people: "64 MiB", "512 KiB", "100 bytes"."""
    if n >= MiB:
        return f"{n / MiB:g} MiB"
    return f"{n / 1024:g} KiB" if n >= 1024 else f"{n} bytes"


def check_declared_length(headers: Mapping[str, str], settings: ServerSettings) -> None:
    """Refuse a body whose Content-Length is over the request limit, before reading any of it."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise _too_large_request(settings)


async def read_uploads(headers: Mapping[str, str], body: AsyncIterator[bytes],
                       settings: ServerSettings) -> list[Upload]:
    """The files of the `file` field(s), in order, read from `body` under `settings`' limits.

    Args:
        headers: the request's headers (lower-case names): Content-Type and Content-Length.
        body: the request body as it arrives (`request.stream()`).
        settings: the limits.

    Raises:
        UploadRejected: 413 over a size or count limit, 415 not multipart, 400 malformed,
            422 no file sent.
    """
    content_type, params = parse_options_header(headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRejected(415, f"send images as multipart/form-data in the field '{FIELD}' "
                                  f"(got {content_type.decode('latin-1') or 'no content type'})", "bad_request")
    check_declared_length(headers, settings)
    reader = _PartReader(settings)
    parser = MultipartParser(params[b"boundary"], reader.callbacks())
    total = 0
    try:
        async for chunk in body:
            total += len(chunk)
            if total > settings.max_request_bytes:
                raise _too_large_request(settings)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise UploadRejected(400, "the multipart body is malformed", "bad_request") from None
    if not reader.files:
        raise UploadRejected(422, f"no image: send one or more files in the multipart field '{FIELD}'",
                             "bad_request")
    return reader.files


def _too_large_request(settings: ServerSettings) -> UploadRejected:
    return UploadRejected(413, f"the request is larger than the limit of {size_text(settings.max_request_bytes)}; "
                               f"send fewer or smaller images per request", "too_large")


@dataclass
class _PartReader:
    """python-multipart callbacks that keep the `file` parts and enforce the per-file limits."""

    settings: ServerSettings
    files: list[Upload] = field(default_factory=list)
    _header_name: bytes = b""
    _header_value: bytes = b""
    _disposition: bytes = b""
    _current: bytearray | None = None  # the data of the file part being read, else None
    _name: str = ""

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._field, "on_header_value": self._value,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._disposition, self._current = b"", None

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name", b"").decode("utf-8", "replace") != FIELD:
            return  # other fields are skipped (their bytes still count towards the request limit)
        if len(self.files) >= self.settings.max_files:
            raise UploadRejected(413, f"more than {self.settings.max_files} files in one request; "
                                      f"send at most {self.settings.max_files} per request", "too_many_files")
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        self._name = filename.replace("\\", "/").rsplit("/", 1)[-1] or f"file-{len(self.files) + 1}"
        self._current = bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._current is None:
            return
        self._current += data[start:end]
        if len(self._current) > self.settings.max_file_bytes:
            raise UploadRejected(413, f"'{self._name}' is larger than the limit of "
                                      f"{size_text(self.settings.max_file_bytes)} per file", "too_large", self._name)

    def _end(self) -> None:
        if self._current is not None:
            self.files.append(Upload(self._name, bytes(self._current)))
        self._current = None
