"""Fault injection for `pixclass download`: a kill or a Ctrl-C at any moment, then a rerun, gives
the folder an uninterrupted run gives.

A server on 127.0.0.1 (run by this test process) serves a few hundred small JPEGs with some
latency, pairs of URLs with the same bytes, and URLs that fail (404, an HTML page, a truncated
JPEG). A clean run of `pixclass download URLS --out DIR` (with and without `--size`) is the
reference; its first and last requests bound the moments at which other runs are signalled:
SIGKILL to the main process (as `kill -9` or the OOM killer), SIGINT to the process group (as
Ctrl-C). After each signal the folder must already be consistent, and after a rerun it must
equal the reference.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from collect.collect_helpers import FakeServer, Reply, make_image
from faults.killer import kill_points, run_and_signal, run_pixclass, wait_gone
from pixclass.collect.manifest import ManifestRecord, read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

N_IMAGES = 220  # distinct pictures at /img/N.jpg
N_TWINS = 20  # /mirror/N.jpg serves the same bytes as /img/N.jpg (same name: a clean run is deterministic)
N_MISSING, N_PAGES, N_CUT = 8, 6, 6  # /gone/N.jpg (404), /page/N.jpg (HTML), /cut/N.jpg (truncated JPEG)
KILL_POINTS = 10  # per signal and size: 20 SIGKILL and 20 SIGINT moments in all
SIZES = [None, 32]


class Site:
    """The image server: every answer waits a seeded 20-120 ms; it notes when each request came."""

    def __init__(self) -> None:
        self.server = FakeServer()
        self.images = {i: make_image(i) for i in range(N_IMAGES)}
        self.latency = random.Random(7)
        self.request_times: list[float] = []
        self._lock = threading.Lock()
        self.server.fallback = self.answer
        self.urls = ([self.server.url(f"/img/{i}.jpg") for i in range(N_IMAGES)]
                     + [self.server.url(f"/mirror/{i}.jpg") for i in range(N_TWINS)]
                     + [self.server.url(f"/{kind}/{i}.jpg") for kind, n in
                        (("gone", N_MISSING), ("page", N_PAGES), ("cut", N_CUT)) for i in range(n)])
        random.Random(3).shuffle(self.urls)

    def answer(self, req) -> Reply:
        with self._lock:
            self.request_times.append(time.monotonic())
            delay = self.latency.uniform(0.02, 0.12)
        kind, name = req.path.split("/")[1:3]
        n = int(name.split(".")[0])
        if kind in ("img", "mirror"):
            return Reply(200, self.images[n], {"Content-Type": "image/jpeg"}, delay=delay)
        if kind == "page":
            return Reply(200, b"<!DOCTYPE html><html><body>Blocked</body></html>" * 20,
                         {"Content-Type": "image/jpeg"}, delay=delay)
        if kind == "cut":
            return Reply(200, make_image(1000 + n, size=(200, 150))[:900], delay=delay)
        return Reply(404, b"not here", delay=delay)


@pytest.fixture(scope="module")
def site():
    site = Site()
    site.server.httpd.handle_error = lambda request, address: None  # killed clients reset their connections
    site.server._thread.start()
    yield site
    site.server.httpd.shutdown()
    site.server.httpd.server_close()


@pytest.fixture(scope="module")
def listing(site, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lists") / "urls.txt"
    path.write_text("\n".join(site.urls) + "\n")
    return path


def command(listing: Path, out: Path, size: int | None) -> list[str]:
    return ["download", str(listing), "--out", str(out), *(["--size", str(size)] if size else [])]


class Reference:
    """A clean run's folder, and when (seconds after its start) it asked its first and last URL."""

    def __init__(self, out: Path, first: float, last: float) -> None:
        self.out, self.first, self.last = out, first, last
        self.files = image_files(out)
        self.ok, self.failed = outcomes(out)


@pytest.fixture(scope="module")
def references(site, listing, tmp_path_factory) -> dict[int | None, Reference]:
    refs = {}
    for size in SIZES:
        out = tmp_path_factory.mktemp("clean")
        site.request_times.clear()
        started = time.monotonic()
        done = run_pixclass(*command(listing, out, size))
        assert done.returncode == 0, done.stderr
        refs[size] = Reference(out, min(site.request_times) - started, max(site.request_times) - started)
        assert len(refs[size].files) == N_IMAGES and len(refs[size].failed) == N_MISSING + N_PAGES + N_CUT
    return refs


def image_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "manifest.csv"}


def latest_rows(out: Path) -> dict[str, ManifestRecord]:
    return {rec.url: rec for rec in read_manifest(out / "manifest.csv")}


def outcomes(out: Path) -> tuple[set[str], set[str]]:
    """The images kept (a URL, or for twin URLs the picture both serve) and the URLs that failed."""
    latest = latest_rows(out)
    ok = {url.replace("/mirror/", "/img/") for url, rec in latest.items() if rec.status == "ok"}
    return ok, {url for url, rec in latest.items() if rec.status == "failed"}


def assert_consistent_now(out: Path, ref: Reference) -> None:
    """Right after a signal: the manifest reads, no file is half-written under its final name."""
    latest = latest_rows(out)
    for name, data in image_files(out).items():
        if not name.startswith(".") and "/." not in name:
            assert data == ref.files.get(name), f"{name}: not the image a clean run keeps under that name"
    for rec in latest.values():
        if rec.status == "ok":
            assert (out / rec.file).is_file(), f"{rec.url}: ok row, but {rec.file} is missing"
        if rec.status == "failed":  # only the URLs that always fail: an interruption is no failure
            assert rec.url.split("/")[3] in ("gone", "page", "cut"), f"{rec.url}: {rec.error}"


def assert_same_as_clean_run(out: Path, ref: Reference) -> None:
    files = image_files(out)
    assert [name for name in files if name.startswith(".") or "/." in name] == [], "hidden temp files left"
    assert files == ref.files  # same names, same bytes: no second copy of any image under another name
    assert outcomes(out) == (ref.ok, ref.failed)
    latest = latest_rows(out)
    assert not [url for url, rec in latest.items() if rec.status == "pending"]
    named = Counter(rec.file for rec in latest.values() if rec.status == "ok")
    assert set(named) == set(files) and set(named.values()) == {1}  # each file: exactly one ok row
    assert len(set(files.values())) == len(files)  # one file per distinct image
    twins = [rec for url, rec in latest.items()
             if "/mirror/" in url or ("/img/" in url and url.replace("/img/", "/mirror/") in latest)]
    assert len(twins) == 2 * N_TWINS
    assert Counter(rec.status for rec in twins) == Counter({"ok": N_TWINS, "duplicate": N_TWINS})


@pytest.mark.parametrize("size", SIZES, ids=["as-downloaded", "resized"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_signal_at_any_moment_then_a_rerun_gives_the_folder_of_an_uninterrupted_run(
        site, listing, references, tmp_path, sig, size):
    ref = references[size]
    moments = kill_points(seed=int(sig) * 100 + (size or 0), n=KILL_POINTS, lo=ref.first, hi=ref.last)
    signalled = 0
    for i, moment in enumerate(moments):
        out = tmp_path / f"run{i}"
        args = command(listing, out, size)
        run = run_and_signal(args, moment, sig, timeout=120)
        where = f"signal {sig} at {moment:.2f} s"
        finished = "already done; manifest: " in run.stdout  # the summary: the signal came after the work
        signalled += run.signalled and not finished
        if not run.signalled:
            assert run.returncode == 0, f"{where}: {run.stderr[-2000:]}"
        elif finished:  # a Ctrl-C while the interpreter exits is Python's, not the command's
            assert run.returncode in (0, 130, -signal.SIGINT, -signal.SIGKILL), f"{where}: {run.stderr[-2000:]}"
        elif sig == signal.SIGINT:
            last = run.stderr.strip().splitlines()[-1]
            assert run.returncode == 130, f"{where}: {run.stderr[-2000:]}"
            assert last.startswith("pixclass: download interrupted: ") and last.endswith(
                "; run the same command again to continue"), f"{where}: {last}"
            assert "Traceback" not in run.stderr, where
        else:
            assert run.returncode == -signal.SIGKILL, where
        assert wait_gone(run.children) == [], f"{where}: orphaned processes"
        assert_consistent_now(out, ref)
        again = run_pixclass(*args, timeout=120)
        assert again.returncode == 0, f"{where}, then the rerun: {again.stderr[-2000:]}"
        assert_same_as_clean_run(out, ref)
    assert signalled >= KILL_POINTS - 2  # the moments fall inside the runs, not after them
