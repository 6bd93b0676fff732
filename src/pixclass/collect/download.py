"""Concurrent image downloading into a folder, recorded in `manifest.csv` so reruns resume.

`download_images` fetches many URLs at once (httpx async, a global and a per-host limit),
retries 429/5xx and network errors with backoff (honouring `Retry-After`), stops reading at
`max_bytes`, sniffs magic bytes (a page served as `image/jpeg` is rejected), decodes every image
once, optionally resizes it, names it safely, skips exact duplicates by sha256, and appends
manifest rows. URLs already `ok` (file present) or `duplicate` in the manifest are skipped.

Crash consistency (a kill or Ctrl-C at any moment, then a rerun, gives the folder of an
uninterrupted run): a kept image is announced by a `pending` row naming its file before a byte
of it is written; the file is written to the hidden `.NAME.part` next to it and linked to `NAME`
(never replacing an existing file); then an `ok` row follows. On start, a `pending` URL whose
file exists completely is adopted (an `ok` row, no download), the `.NAME.part` of every pending
row is removed, and a pending name stays reserved for its URL. Ctrl-C cancels the run: rows
already written stay, and `KeyboardInterrupt` propagates once every worker thread has finished.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import os
import random
import ssl
import stat
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from pixclass.collect.hosts import HostPools
from pixclass.collect.imaging import ImageProblem, describe, human_bytes, prepare, sniff
from pixclass.collect.manifest import MANIFEST, ManifestRecord, ManifestWriter, pending_complete, read_manifest
from pixclass.collect.naming import safe_label, safe_stem
from pixclass.collect.progress import counting_progress
from pixclass.collect.urls import UrlItem, read_url_list
from pixclass.data.images import MAX_PIXELS
from pixclass.errors import PixclassError

USER_AGENT = "Mozilla/5.0 (compatible; pixclass/0.1; image dataset downloader)"
T = TypeVar("T")


@dataclass(frozen=True)
class DownloadSettings:
    """Every knob of a download run; see `download_images` for their meaning."""

    size: int | None = None
    pad: bool = False
    max_bytes: int = 20_000_000
    timeout: float = 20.0
    retries: int = 3
    concurrency: int = 64
    per_host: int = 16
    max_redirects: int = 5
    max_pixels: int = MAX_PIXELS
    backoff: float = 0.5
    max_retry_wait: float = 60.0


@dataclass
class DownloadSummary:
    """Counts of one run and the `ok`/`duplicate`/`failed` rows it wrote (skipped URLs write none).

    `skipped` counts URLs already done, including images an interrupted run had saved without
    its `ok` row: this run adopts them (their `ok` rows are in `records` too).
    """

    out: Path
    manifest: Path
    ok: int = 0
    duplicate: int = 0
    failed: int = 0
    skipped: int = 0
    records: list[ManifestRecord] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.ok} downloaded, {self.duplicate} duplicates, {self.failed} failed, "
                f"{self.skipped} already done; manifest: {self.manifest}")


def download_images(
    urls: str | Path | Iterable[str | UrlItem],
    out: str | Path,
    *,
    size: int | None = None,
    pad: bool = False,
    max_bytes: int = 20_000_000,
    timeout: float = 20.0,
    retries: int = 3,
    concurrency: int = 64,
    per_host: int = 16,
    max_redirects: int = 5,
    max_pixels: int = MAX_PIXELS,
    backoff: float = 0.5,
    max_retry_wait: float = 60.0,
    progress: bool = True,
) -> DownloadSummary:
    """Download images into `out` (or `out/<label>/`), appending to `out/manifest.csv`.

    Args:
        urls: a .txt/.csv URL file (see `read_url_list`) or an iterable of URLs / `UrlItem`s.
        out: destination folder, created if needed.
        size: shrink images so the longest side is at most this many pixels.
        pad: pad resized images onto a black square.
        max_bytes: stop reading a response past this many bytes (Content-Length is not trusted).
        timeout: seconds of connect/read inactivity; one attempt may take at most 3× this.
        retries: extra attempts after a 429, a 5xx, a timeout or a network error.
        concurrency: requests in flight at once, over all hosts.
        per_host: requests in flight at once to one host.
        max_redirects: redirects followed before giving up (catches loops).
        max_pixels: images with more pixels are refused before decoding (bomb guard).
        backoff: first retry delay in seconds, doubled each attempt (when no Retry-After).
        max_retry_wait: a Retry-After longer than this fails the URL instead of waiting.
        progress: show a progress bar on stderr.
    """
    settings = DownloadSettings(size, pad, max_bytes, timeout, retries, concurrency, per_host,
                                max_redirects, max_pixels, backoff, max_retry_wait)
    _check_settings(settings)
    items = read_url_list(urls)
    for label in {item.label for item in items if item.label}:
        safe_label(label)  # a bad class name fails now, before any download
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with ManifestWriter(out / MANIFEST) as writer:  # one run per folder at a time
        downloader = _Downloader(out, settings, progress, writer)
        return run_sync(downloader.run(items))


def _check_settings(s: DownloadSettings) -> None:
    for name in ("max_bytes", "timeout", "concurrency", "per_host", "max_pixels"):
        if getattr(s, name) <= 0:
            raise PixclassError(f"{name} must be positive, got {getattr(s, name)}")
    if s.size is not None and s.size <= 0:
        raise PixclassError(f"size must be a positive number of pixels, got {s.size}")
    if s.retries < 0 or s.max_redirects < 0:
        raise PixclassError("retries and max_redirects cannot be negative")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running loop (e.g. Jupyter).

    Ctrl-C cancels the coroutine and raises `KeyboardInterrupt` once it has unwound (asyncio.run
    does this on Python 3.11+; from a running loop the coroutine runs in a thread, cancelled here).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task]] = concurrent.futures.Future()

    async def tracked() -> T:
        started.set_result((asyncio.get_running_loop(), asyncio.current_task()))
        return await coro

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, tracked())
        try:
            return result.result()
        except KeyboardInterrupt:
            loop, task = started.result()
            loop.call_soon_threadsafe(task.cancel)
            concurrent.futures.wait([result])
            raise


class _Failure(Exception):
    """This URL failed for good; the message goes into the manifest's `error` column."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Claim:
    """Content being kept by one URL; other URLs with the same sha256 wait for the outcome."""

    def __init__(self) -> None:
        self.settled = asyncio.Event()


class _Downloader:
    def __init__(self, out: Path, settings: DownloadSettings, progress: bool, writer: ManifestWriter):
        self.out, self.s, self.progress, self.writer = out, settings, progress, writer
        self.summary = DownloadSummary(out=out, manifest=writer.path)
        self.done: set[str] = set()
        self.hashes: dict[str, str | _Claim] = {}  # sha256 -> kept file, or the claim of the URL keeping it
        self.taken: set[str] = set()  # names reserved in this run, lower-cased
        self.reserved: dict[str, str] = {}  # lower-cased name of a pending row -> its URL
        self._recover(read_manifest(writer.path))

    def _recover(self, records: list[ManifestRecord]) -> None:
        """Learn what earlier runs kept; finish what an interrupted run left half done."""
        latest = {rec.url: rec for rec in records}
        kept = {rec.file.lower() for rec in latest.values() if rec.status == "ok" and (self.out / rec.file).is_file()}
        for rec in latest.values():
            if rec.status == "pending" and rec.file.lower() not in kept:
                if pending_complete(self.out, rec):  # the file is in place, its ok row was never written
                    rec = dataclasses.replace(rec, status="ok", error="")
                    self.writer.write(rec)
                    self.summary.records.append(rec)
                    kept.add(rec.file.lower())
                else:  # the file was never finished: download again, under the same name
                    self.reserved[rec.file.lower()] = rec.url
            if rec.status == "ok" and rec.file.lower() in kept:
                self.hashes[rec.sha256] = rec.file
                self.done.add(rec.url)
            elif rec.status == "duplicate":
                self.done.add(rec.url)
        for rel in {rec.file for rec in records if rec.status == "pending"}:
            _remove_temp(self.out / rel)

    async def run(self, items: list[UrlItem]) -> DownloadSummary:
        todo = [item for item in items if item.url not in self.done]
        self.summary.skipped = len(items) - len(todo)
        self._ssl: ssl.SSLContext | None = None
        self._pools = HostPools(self.s.per_host, self._new_client, Counter(_host(item.url) for item in todo))
        self._global_limit = asyncio.Semaphore(self.s.concurrency)
        names = ["ok", "duplicate", "failed", "skipped"]
        with counting_progress("download", len(todo), names, self.progress) as self.update:
            self.update(advance=0, skipped=self.summary.skipped)
            workers = [asyncio.ensure_future(self._one(item)) for item in todo]
            try:
                await asyncio.gather(*workers)
            finally:
                # Cancelled (Ctrl-C): gather returns at the first cancelled worker. Let every worker
                # unwind before the pools close, so none writes a row after this point.
                for worker in workers:
                    worker.cancel()
                if workers:
                    await asyncio.wait(workers)
                await self._pools.aclose()
        return self.summary

    def _new_client(self, connections: int) -> httpx.AsyncClient:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # shared by all clients: one costs ~80 ms
        return httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(self.s.timeout), follow_redirects=True, verify=self._ssl,
            max_redirects=self.s.max_redirects, headers={"User-Agent": USER_AGENT},
        )

    async def _one(self, item: UrlItem) -> None:
        meta = dict(url=item.url, provider=item.provider, query=item.query, license=item.license, label=item.label)
        host = _host(item.url)
        try:
            # Host slot first: a task waiting for a busy host must not hold a global slot.
            async with self._pools.slot(host) as client, self._global_limit:
                try:
                    data = await self._get(client, item.url)
                finally:
                    await self._pools.done(host)
            record = await self._keep(data, meta)
        except _Failure as err:
            record = ManifestRecord(**meta, status="failed", error=str(err))
        except Exception as err:  # noqa: BLE001 - one bad URL must never stop the others
            record = ManifestRecord(**meta, status="failed", error=f"{type(err).__name__}: {err}")
        self.writer.write(record)
        self.summary.records.append(record)
        n = getattr(self.summary, record.status) + 1
        setattr(self.summary, record.status, n)
        self.update(**{record.status: n})

    async def _get(self, client: httpx.AsyncClient, url: str) -> bytes:
        last: _Retryable | None = None
        for attempt in range(self.s.retries + 1):
            try:
                return await asyncio.wait_for(self._attempt(client, url), 3 * self.s.timeout)
            except _Retryable as err:
                last = err
            except (httpx.TimeoutException, asyncio.TimeoutError):
                last = _Retryable(f"timed out after {self.s.timeout:g} s")
            except httpx.TooManyRedirects:
                raise _Failure(f"more than {self.s.max_redirects} redirects (a redirect loop?)") from None
            except httpx.UnsupportedProtocol as err:
                raise _Failure(f"unsupported URL: {err}") from None
            except httpx.TransportError as err:
                last = _Retryable(f"network error: {type(err).__name__} {err}".strip())
            if attempt == self.s.retries:
                break
            wait = last.retry_after
            if wait is not None and wait > self.s.max_retry_wait:
                raise _Failure(f"{last}: Retry-After {wait:.0f} s exceeds the {self.s.max_retry_wait:g} s limit")
            if wait is None:
                wait = self.s.backoff * 2**attempt * (0.5 + random.random())
            await asyncio.sleep(wait)
        raise _Failure(f"{last} (gave up after {self.s.retries + 1} attempts)")

    async def _attempt(self, client: httpx.AsyncClient, url: str) -> bytes:
        async with client.stream("GET", url) as resp:
            code = resp.status_code
            if code == 429 or code >= 500:
                raise _Retryable(f"HTTP {code}", _retry_after(resp.headers.get("retry-after")))
            if code >= 400:
                raise _Failure(f"HTTP {code} {resp.reason_phrase}".strip())
            buf = bytearray()
            sniffed = False
            async for chunk in resp.aiter_bytes():  # decoded size counts: a gzip bomb stops too
                buf += chunk
                if len(buf) > self.s.max_bytes:
                    raise _Failure(f"too large: more than {human_bytes(self.s.max_bytes)} (max_bytes)")
                if not sniffed and len(buf) >= 32:
                    sniffed = True
                    if sniff(bytes(buf[:32])) is None:  # an HTML page: stop reading it now
                        raise _Failure(f"not an image ({describe(bytes(buf[:512]), _length(resp, len(buf)))})")
            return bytes(buf)

    async def _keep(self, data: bytes, meta: dict[str, str]) -> ManifestRecord:
        sha = hashlib.sha256(data).hexdigest()
        while isinstance(twin := self.hashes.get(sha), _Claim):
            await twin.settled.wait()  # the same bytes from another URL: is it kept, or did it fail?
        if twin is not None:
            return ManifestRecord(**meta, file=twin, sha256=sha, bytes=len(data),
                                  status="duplicate", error=f"same content as {twin}")
        claim = self.hashes[sha] = _Claim()
        try:
            record = await self._store(data, sha, meta)
            self.hashes[sha] = record.file
            return record
        except BaseException:
            del self.hashes[sha]  # a waiting twin tries for itself
            raise
        finally:
            claim.settled.set()

    async def _store(self, data: bytes, sha: str, meta: dict[str, str]) -> ManifestRecord:
        """Decode (and resize), announce with a pending row, write the file; the ok row to write."""
        try:
            img = await asyncio.to_thread(prepare, data, size=self.s.size, pad=self.s.pad, max_pixels=self.s.max_pixels)
        except ImageProblem as err:
            raise _Failure(str(err)) from None
        rel = self._reserve_name(meta["url"], meta["label"], sha, img.ext)
        pending = ManifestRecord(**meta, file=rel, sha256=sha, bytes=len(img.data),
                                 width=img.width, height=img.height, status="pending")
        self.writer.write(pending)  # before the file: a kill from here on leaves a known name
        try:
            await asyncio.to_thread(_write_new_file, self.out / rel, img.data)
        except FileExistsError:
            raise _Failure(f"'{rel}' appeared while it was being written; run again to pick another name") from None
        except OSError as err:
            raise _Failure(f"cannot write '{rel}': {err.strerror or err}") from None
        return dataclasses.replace(pending, status="ok")

    def _reserve_name(self, url: str, label: str, sha: str, ext: str) -> str:
        folder = safe_label(label) + "/" if label else ""
        stem = safe_stem(url, fallback=sha[:16])
        for n in range(100_000):
            suffix = "" if n == 0 else f"-{sha[:8]}" if n == 1 else f"-{sha[:8]}-{n}"
            rel = f"{folder}{stem}{suffix}{ext}"
            key = rel.lower()  # lower-case: some file systems ignore case
            if key not in self.taken and self.reserved.get(key, url) == url and not (self.out / rel).exists():
                self.taken.add(key)
                return rel
        raise _Failure(f"no free file name for '{stem}{ext}' in '{self.out / folder}'")


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def _remove_temp(path: Path) -> None:
    """Remove the `.NAME.part` of `path` left by a kill (a regular file or a link, nothing else)."""
    tmp = _temp_path(path)
    try:
        if not stat.S_ISDIR(tmp.lstat().st_mode):
            tmp.unlink()
    except OSError:  # not there (the usual case), or not ours to remove
        pass


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to `path`, which must not exist; `path` never holds a partial file.

    The bytes go to `.NAME.part` first (created afresh, so with the umask's permissions), which
    is then hard-linked to `NAME`: unlike a rename, a link never replaces a file that appeared
    meanwhile. Where hard links are not supported, it is renamed once `NAME` is seen to be free.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    if os.path.lexists(tmp):  # a leftover of ours: the name is reserved to this URL
        tmp.unlink()
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system (FAT, some network mounts)
            if path.exists():
                raise FileExistsError(path) from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _length(resp: httpx.Response, read: int) -> int:
    try:
        return max(read, int(resp.headers.get("content-length", "")))
    except ValueError:
        return read
