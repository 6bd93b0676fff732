"""Concurrent image downloading into a folder, recorded in `manifest.csv` so reruns resume.

`download_images` fetches many URLs at once (httpx async, a global and a per-host limit),
retries 429/5xx and network errors with backoff (honouring `Retry-After`), stops reading at
`max_bytes`, sniffs magic bytes (a page served as `image/jpeg` is rejected), decodes every image
once, optionally resizes it, names it safely, skips exact duplicates by sha256, and appends one
manifest row per URL. URLs already `ok` (file present) or `duplicate` in the manifest are skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import random
import ssl
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from pixclass.collect.hosts import HostPools
from pixclass.collect.imaging import DEFAULT_MAX_PIXELS, ImageProblem, describe, human_bytes, prepare, sniff
from pixclass.collect.manifest import ManifestRecord, ManifestWriter, read_manifest
from pixclass.collect.naming import safe_label, safe_stem
from pixclass.collect.progress import counting_progress
from pixclass.collect.urls import UrlItem, read_url_list
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
    max_pixels: int = DEFAULT_MAX_PIXELS
    backoff: float = 0.5
    max_retry_wait: float = 60.0


@dataclass
class DownloadSummary:
    """Counts of one run and the manifest rows it wrote (skipped URLs write none)."""

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
    max_pixels: int = DEFAULT_MAX_PIXELS,
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
    return run_sync(_Downloader(out, settings, progress).run(items))


def _check_settings(s: DownloadSettings) -> None:
    for name in ("max_bytes", "timeout", "concurrency", "per_host", "max_pixels"):
        if getattr(s, name) <= 0:
            raise PixclassError(f"{name} must be positive, got {getattr(s, name)}")
    if s.size is not None and s.size <= 0:
        raise PixclassError(f"size must be a positive number of pixels, got {s.size}")
    if s.retries < 0 or s.max_redirects < 0:
        raise PixclassError("retries and max_redirects cannot be negative")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running loop (e.g. Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _Failure(Exception):
    """This URL failed for good; the message goes into the manifest's `error` column."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Downloader:
    def __init__(self, out: Path, settings: DownloadSettings, progress: bool):
        self.out, self.s, self.progress = out, settings, progress
        self.summary = DownloadSummary(out=out, manifest=out / "manifest.csv")
        self.done: set[str] = set()
        self.hashes: dict[str, str] = {}  # sha256 -> kept file ("" while being written)
        self._load_previous()
        self.taken: set[str] = set()  # names reserved in this run, lower-cased

    def _load_previous(self) -> None:
        latest = {rec.url: rec for rec in read_manifest(self.summary.manifest)}
        for rec in latest.values():
            kept = rec.status == "ok" and rec.file and (self.out / rec.file).is_file()
            if kept:
                self.hashes[rec.sha256] = rec.file
            if kept or rec.status == "duplicate":
                self.done.add(rec.url)

    async def run(self, items: list[UrlItem]) -> DownloadSummary:
        todo = [item for item in items if item.url not in self.done]
        self.summary.skipped = len(items) - len(todo)
        self._ssl: ssl.SSLContext | None = None
        self._pools = HostPools(self.s.per_host, self._new_client, Counter(_host(item.url) for item in todo))
        self._global_limit = asyncio.Semaphore(self.s.concurrency)
        names = ["ok", "duplicate", "failed", "skipped"]
        with ManifestWriter(self.summary.manifest) as self.writer, \
                counting_progress("download", len(todo), names, self.progress) as self.update:
            self.update(advance=0, skipped=self.summary.skipped)
            try:
                await asyncio.gather(*(self._one(item) for item in todo))
            finally:
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
        if sha in self.hashes:
            twin = self.hashes[sha] or "another URL of this run"
            return ManifestRecord(**meta, file=self.hashes[sha], sha256=sha, bytes=len(data),
                                  status="duplicate", error=f"same content as {twin}")
        self.hashes[sha] = ""  # claim it now: the same bytes may arrive from another URL meanwhile
        try:
            img = await asyncio.to_thread(prepare, data, size=self.s.size, pad=self.s.pad, max_pixels=self.s.max_pixels)
        except ImageProblem as err:
            del self.hashes[sha]
            raise _Failure(str(err)) from None
        rel = self._reserve_name(meta["url"], meta["label"], sha, img.ext)
        await asyncio.to_thread(_write_atomic, self.out / rel, img.data)
        self.hashes[sha] = rel
        return ManifestRecord(**meta, file=rel, sha256=sha, bytes=len(img.data),
                              width=img.width, height=img.height, status="ok")

    def _reserve_name(self, url: str, label: str, sha: str, ext: str) -> str:
        folder = safe_label(label) + "/" if label else ""
        stem = safe_stem(url, fallback=sha[:16])
        for n in range(100_000):
            suffix = "" if n == 0 else f"-{sha[:8]}" if n == 1 else f"-{sha[:8]}-{n}"
            rel = f"{folder}{stem}{suffix}{ext}"
            if rel.lower() not in self.taken and not (self.out / rel).exists():
                self.taken.add(rel.lower())  # lower-case: some file systems ignore case
                return rel
        raise _Failure(f"no free file name for '{stem}{ext}' in '{self.out / folder}'")


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
