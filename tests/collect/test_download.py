"""download_images: concurrent, careful downloading against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from collect_helpers import Reply, blank_image, make_image
from pixclass.cli import main
from pixclass.collect import download_images, read_manifest
from pixclass.collect.manifest import ManifestRecord, ManifestWriter, count_kept
from pixclass.errors import PixclassError

pytestmark = pytest.mark.timeout(60)

FAST = dict(progress=False, backoff=0.01, timeout=5.0)


def serve_images(server, n: int, prefix: str = "/img") -> list[str]:
    return [server.route(f"{prefix}/{i}.jpg", Reply(200, make_image(i), {"Content-Type": "image/jpeg"}))
            for i in range(n)]


def rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as fh:
        return {row["url"]: row for row in csv.DictReader(fh)}


def latest(out: Path) -> dict[str, tuple[str, str]]:
    """(status, file) of the latest manifest row of each URL."""
    return {rec.url: (rec.status, rec.file) for rec in read_manifest(out / "manifest.csv")}


def test_downloads_every_url_and_records_it_in_the_manifest(server, tmp_path):
    urls = serve_images(server, 5)
    summary = download_images(urls, tmp_path, **FAST)
    assert summary.ok == 5
    manifest = rows(tmp_path)
    for i, url in enumerate(urls):
        row = manifest[url]
        assert row["status"] == "ok" and row["file"] == f"{i}.jpg"
        assert (tmp_path / row["file"]).read_bytes() == make_image(i)
        assert (row["width"], row["height"]) == ("64", "48")
        assert len(row["sha256"]) == 64 and int(row["bytes"]) == len(make_image(i))


def test_reads_urls_from_a_text_file(server, tmp_path):
    urls = serve_images(server, 2)
    listing = tmp_path / "urls.txt"
    listing.write_text("# my cats\n" + "\n".join(urls) + "\n\n")
    assert download_images(listing, tmp_path / "out", **FAST).ok == 2


def test_csv_labels_become_subfolders(server, tmp_path):
    urls = serve_images(server, 2)
    listing = tmp_path / "urls.csv"
    listing.write_text(f"url,label\n{urls[0]},coral snake\n{urls[1]},kingsnake\n")
    download_images(listing, tmp_path / "out", **FAST)
    assert (tmp_path / "out/coral snake/0.jpg").is_file()
    assert (tmp_path / "out/kingsnake/1.jpg").is_file()


def test_an_html_page_served_as_jpeg_is_rejected(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Access denied</body></html>" * 40
    url = server.route("/photo.jpg", Reply(200, page, {"Content-Type": "image/jpeg"}))
    summary = download_images([url], tmp_path, **FAST)
    assert summary.failed == 1 and "not an image (HTML page" in summary.records[0].error
    assert not any(p.suffix == ".jpg" for p in tmp_path.iterdir())


def test_a_truncated_image_is_rejected_after_decoding(server, tmp_path):
    data = make_image(1, size=(256, 256))
    url = server.route("/cut.jpg", Reply(200, data[: len(data) // 2]))
    summary = download_images([url], tmp_path, **FAST)
    assert summary.failed == 1 and summary.records[0].error.startswith("truncated JPEG")


def test_http_errors_fail_one_url_and_the_others_carry_on(server, tmp_path):
    good = serve_images(server, 2)
    missing = server.url("/gone.jpg")  # no route: 404
    summary = download_images([missing, *good], tmp_path, **FAST)
    assert (summary.ok, summary.failed) == (2, 1)
    assert rows(tmp_path)[missing]["error"] == "HTTP 404 Not Found"


def test_429_is_retried_after_the_retry_after_delay(server, tmp_path):
    seen: list[float] = []

    def limited(_req):
        seen.append(time.monotonic())
        if len(seen) == 1:
            return Reply(429, b"slow down", {"Retry-After": "1"})
        return Reply(200, make_image(3))

    url = server.route("/limited.jpg", limited)
    summary = download_images([url], tmp_path, **FAST)
    assert summary.ok == 1 and len(seen) == 2
    assert seen[1] - seen[0] >= 0.9  # the client waited as told


def test_a_retry_after_beyond_the_limit_fails_instead_of_waiting(server, tmp_path):
    url = server.route("/later.jpg", Reply(429, b"", {"Retry-After": "3600"}))
    summary = download_images([url], tmp_path, max_retry_wait=5, **FAST)
    assert summary.failed == 1 and "Retry-After 3600 s exceeds" in summary.records[0].error
    assert server.hits["/later.jpg"] == 1


def test_server_errors_are_retried_with_backoff_then_given_up(server, tmp_path):
    url = server.route("/broken.jpg", Reply(503, b"down"))
    summary = download_images([url], tmp_path, retries=2, **FAST)
    assert server.hits["/broken.jpg"] == 3
    assert summary.records[0].error == "HTTP 503 (gave up after 3 attempts)"


def test_a_server_that_does_not_answer_times_out(server, tmp_path):
    url = server.route("/sleepy.jpg", Reply(200, make_image(0), delay=3))
    summary = download_images([url], tmp_path, progress=False, timeout=0.3, retries=0)
    assert summary.failed == 1 and summary.records[0].error.startswith("timed out")


def test_a_trickling_response_hits_the_per_attempt_deadline(server, tmp_path):
    def trickle():
        yield make_image(0)[:100]
        for _ in range(40):  # a byte every 0.1 s: never idle long enough for the read timeout
            time.sleep(0.1)
            yield b"\0"

    url = server.route("/drip.jpg", lambda _req: Reply(200, trickle()))
    summary = download_images([url], tmp_path, progress=False, timeout=0.4, retries=0)
    assert summary.failed == 1 and summary.records[0].error.startswith("timed out")


def test_redirects_are_followed(server, tmp_path):
    target = server.route("/real.jpg", Reply(200, make_image(5)))
    url = server.route("/short", Reply(302, b"", {"Location": target}))
    summary = download_images([url], tmp_path, **FAST)
    assert summary.ok == 1 and summary.records[0].file == "short.jpg"


def test_a_redirect_loop_fails_clearly(server, tmp_path):
    server.route("/a", Reply(302, b"", {"Location": "/b"}))
    server.route("/b", Reply(302, b"", {"Location": "/a"}))
    summary = download_images([server.url("/a")], tmp_path, max_redirects=4, **FAST)
    assert summary.failed == 1 and "redirects (a redirect loop?)" in summary.records[0].error
    assert server.hits["/a"] + server.hits["/b"] == 5


def test_a_content_length_that_lies_short_leaves_nothing_kept(server, tmp_path):
    # HTTP framing ends the body at the announced length: the cut image must not be kept.
    url = server.route("/short.jpg", Reply(200, make_image(0, size=(256, 256)), {"Content-Length": "1000"}))
    summary = download_images([url], tmp_path, **FAST)
    assert summary.failed == 1 and summary.records[0].error.startswith(("truncated", "corrupt"))
    assert not list(tmp_path.glob("*.jpg"))


def test_a_huge_body_without_length_stops_at_max_bytes(server, tmp_path):
    def endless():
        yield make_image(0)[:64]
        for _ in range(2000):
            yield b"\0" * 65536

    url = server.route("/huge.jpg", lambda _req: Reply(200, endless()))
    summary = download_images([url], tmp_path, max_bytes=200_000, **FAST)
    assert summary.records[0].error == "too large: more than 200.0 kB (max_bytes)"


@pytest.mark.parametrize("path, expected", [
    ("/..%2F..%2Fevil.jpg", "evil.jpg"),
    ("/x/%2e%2e%5c%2e%2e%5cwin.jpg", "win.jpg"),
    ("/CON.jpg", None),
    ("/.hidden.jpg", "hidden.jpg"),
    ("/" + "a" * 300 + ".jpg", "a" * 64 + ".jpg"),
    ("/search?q=../../etc/passwd", "search.jpg"),
])
def test_hostile_names_stay_inside_the_output_folder(server, tmp_path, path, expected):
    server.fallback = lambda _req: Reply(200, make_image(7))
    out = tmp_path / "out"
    summary = download_images([server.url(path)], out, **FAST)
    assert summary.ok == 1, summary.records
    kept = [p for p in tmp_path.rglob("*.jpg")]
    assert len(kept) == 1 and kept[0].parent == out
    if expected:
        assert kept[0].name == expected
    else:  # a device name is replaced by the content hash
        assert kept[0].name == summary.records[0].sha256[:16] + ".jpg"


def test_an_existing_different_file_is_never_overwritten(server, tmp_path):
    (tmp_path / "cat.jpg").write_bytes(b"my own picture")
    url = server.route("/cat.jpg", Reply(200, make_image(1)))
    record = download_images([url], tmp_path, **FAST).records[0]
    assert (tmp_path / "cat.jpg").read_bytes() == b"my own picture"
    assert record.file == f"cat-{record.sha256[:8]}.jpg"


def test_same_name_from_two_urls_keeps_both(server, tmp_path):
    a = server.route("/a/photo.jpg", Reply(200, make_image(1)))
    b = server.route("/b/photo.jpg", Reply(200, make_image(2)))
    summary = download_images([a, b], tmp_path, **FAST)
    assert "photo.jpg" in {r.file for r in summary.records}
    assert len({r.file for r in summary.records}) == 2


def test_the_same_content_from_two_urls_is_kept_once(server, tmp_path):
    a = server.route("/a.jpg", Reply(200, make_image(9)))
    b = server.route("/b.jpg", Reply(200, make_image(9)))
    summary = download_images([a, b], tmp_path, **FAST)
    assert (summary.ok, summary.duplicate) == (1, 1)
    assert len(list(tmp_path.glob("*.jpg"))) == 1


def test_a_rerun_skips_what_is_done_without_asking_the_server(server, tmp_path):
    urls = serve_images(server, 4)
    urls.append(server.url("/gone.jpg"))
    download_images(urls, tmp_path, **FAST)
    hits = sum(server.hits.values())
    again = download_images(urls, tmp_path, **FAST)
    assert (again.ok, again.skipped, again.failed) == (0, 4, 1)  # only the failure is retried
    assert sum(server.hits.values()) == hits + 1


def test_a_rerun_fetches_again_a_file_the_user_deleted(server, tmp_path):
    urls = serve_images(server, 2)
    first = download_images(urls, tmp_path, **FAST)
    (tmp_path / first.records[0].file).unlink()
    assert download_images(urls, tmp_path, **FAST).ok == 1


def test_a_manifest_cut_by_a_kill_is_still_read_and_appended(server, tmp_path):
    urls = serve_images(server, 3)
    download_images(urls[:2], tmp_path, **FAST)
    with (tmp_path / "manifest.csv").open("a") as fh:
        fh.write(f"{urls[2]},2.jpg,abc")  # a partial last line, no newline
    again = download_images(urls, tmp_path, **FAST)
    assert (again.ok, again.skipped) == (1, 2)
    assert latest(tmp_path) == {url: ("ok", f"{i}.jpg") for i, url in enumerate(urls)}


def test_size_shrinks_the_longest_side_keeping_the_aspect(server, tmp_path):
    url = server.route("/big.jpg", Reply(200, make_image(1, size=(400, 200))))
    record = download_images([url], tmp_path, size=100, **FAST).records[0]
    with Image.open(tmp_path / record.file) as im:
        assert im.size == (100, 50) == (record.width, record.height)


def test_pad_makes_a_square(server, tmp_path):
    url = server.route("/wide.png", Reply(200, make_image(1, size=(400, 200), fmt="PNG")))
    record = download_images([url], tmp_path, size=100, pad=True, **FAST).records[0]
    with Image.open(tmp_path / record.file) as im:
        assert im.size == (100, 100) and im.getpixel((50, 5)) == (0, 0, 0)


def test_the_extension_comes_from_the_content_not_the_url(server, tmp_path):
    url = server.route("/pic.jpg", Reply(200, make_image(1, fmt="PNG"), {"Content-Type": "image/jpeg"}))
    assert download_images([url], tmp_path, **FAST).records[0].file == "pic.png"


def test_a_bomb_is_refused_before_decoding(server, tmp_path):
    url = server.route("/bomb.png", Reply(200, blank_image((3000, 3000), "PNG")))
    record = download_images([url], tmp_path, max_pixels=1_000_000, **FAST).records[0]
    assert record.status == "failed" and record.error.startswith("too large: 3000x3000")


def test_a_line_that_is_not_a_url_is_a_clear_error(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text("http://127.0.0.1:9/a.jpg\nftp://example/b.jpg\n")
    with pytest.raises(PixclassError, match=r"urls.txt' line 2: 'ftp://example/b.jpg' is not an http\(s\) URL"):
        download_images(listing, tmp_path / "out", progress=False)


def run_main(args: list[str]) -> int:
    """The exit code of the `pixclass` entry point (it always exits)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_cli_download_prints_a_summary(server, tmp_path, capsys):
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(serve_images(server, 3)))
    assert run_main(["download", str(listing), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "3 downloaded, 0 duplicates, 0 failed, 0 already done" in capsys.readouterr().out


def test_cli_download_of_a_missing_file_is_one_line_and_exit_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["download", str(tmp_path / "nope.txt"), "--out", str(tmp_path)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == f"pixclass: cannot read URL list '{tmp_path / 'nope.txt'}': no such file"


def in_flight_recorder(delay: float = 0.05):
    """A handler that remembers the most requests it ever had in flight at once."""
    import threading

    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handler(req):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1
        return Reply(200, make_image(int(req.path.rsplit("/", 1)[-1].split(".")[0])))

    return handler, state


def test_requests_to_one_host_stay_within_per_host(server, tmp_path):
    handler, state = in_flight_recorder()
    server.fallback = handler
    urls = [server.url(f"/p/{i}.jpg") for i in range(24)]
    summary = download_images(urls, tmp_path, per_host=4, concurrency=50, **FAST)
    assert summary.ok == 24 and state["max"] == 4


def test_requests_over_all_hosts_stay_within_concurrency(server, tmp_path):
    handler, state = in_flight_recorder()
    server.fallback = handler
    port = server.httpd.server_address[1]
    # 127.0.0.1 and 127.0.0.2 are two hosts to the client, one loopback server here.
    other = f"http://127.0.0.2:{port}" if _reachable("127.0.0.2", port) else f"http://localhost:{port}"
    urls = [f"{base}/p/{i}.jpg" for i in range(12) for base in (server.base, other)]
    summary = download_images(urls, tmp_path, per_host=5, concurrency=6, **FAST)
    assert summary.ok == 12 and summary.duplicate == 12 and state["max"] == 6


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def test_retry_after_may_be_an_http_date(server, tmp_path):
    from email.utils import formatdate

    seen: list[float] = []

    def limited(_req):
        seen.append(time.time())
        if len(seen) == 1:
            return Reply(503, b"", {"Retry-After": formatdate(time.time() + 2, usegmt=True)})
        return Reply(200, make_image(3))

    url = server.route("/dated.jpg", limited)
    assert download_images([url], tmp_path, **FAST).ok == 1
    assert seen[1] - seen[0] >= 0.9  # HTTP dates have 1 s resolution



def test_a_hosts_connections_close_once_its_urls_are_done(server, tmp_path):
    from collect_helpers import FakeServer

    other = FakeServer()  # another port: another host to the client
    other._thread.start()
    try:
        server.fallback = lambda _req: Reply(200, make_image(1))
        seen_open: list[int] = []

        def second_host(_req):
            for _ in range(100):  # give the first server's thread up to 1 s to see the close
                if server.open_connections == 0:
                    break
                time.sleep(0.01)
            seen_open.append(server.open_connections)
            return Reply(200, make_image(2))

        other.fallback = second_host
        urls = [server.url("/a1.jpg"), server.url("/a2.jpg"), other.url("/b1.jpg")]
        download_images(urls, tmp_path, concurrency=1, **FAST)
        assert seen_open == [0]
    finally:
        other.httpd.shutdown()
        other.httpd.server_close()


def test_cli_download_says_why_urls_failed(server, tmp_path, capsys):
    listing = tmp_path / "urls.txt"
    listing.write_text(server.url("/gone.jpg") + "\n")
    assert run_main(["download", str(listing), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert f"failed: {server.url('/gone.jpg')}: HTTP 404 Not Found" in capsys.readouterr().out


# Interruptions. A kill can come between any two steps; the rerun must give the folder of an
# uninterrupted run. The first tests build what a kill leaves on disk; the later ones kill a
# real `pixclass download` at a chosen moment.

def announce(out: Path, url: str, file: str, data: bytes, **fields) -> ManifestRecord:
    """Append the `pending` row a run writes before `file` (a kill may come right after it)."""
    record = ManifestRecord(url, file=file, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                            width=64, height=48, status="pending", **fields)
    with ManifestWriter(out / "manifest.csv") as writer:
        writer.write(record)
    return record


def hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob(".*"))


def test_a_file_kept_before_a_kill_cut_off_its_ok_row_is_adopted_without_a_second_copy(server, tmp_path):
    urls = serve_images(server, 2)
    announce(tmp_path, urls[0], "0.jpg", make_image(0))
    (tmp_path / "0.jpg").write_bytes(make_image(0))
    summary = download_images(urls, tmp_path, **FAST)
    assert server.hits["/img/0.jpg"] == 0
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == ["0.jpg", "1.jpg"]
    assert latest(tmp_path) == {urls[0]: ("ok", "0.jpg"), urls[1]: ("ok", "1.jpg")}
    assert (summary.ok, summary.skipped) == (1, 1)


def test_a_file_kept_before_a_kill_counts_as_a_duplicates_twin(server, tmp_path):
    urls = serve_images(server, 1)
    twin = server.route("/elsewhere/copy.jpg", Reply(200, make_image(0)))
    announce(tmp_path, urls[0], "0.jpg", make_image(0))
    (tmp_path / "0.jpg").write_bytes(make_image(0))
    summary = download_images([twin, *urls], tmp_path, **FAST)
    assert latest(tmp_path)[twin] == ("duplicate", "0.jpg")
    assert [p.name for p in tmp_path.glob("*.jpg")] == ["0.jpg"] and summary.duplicate == 1


def test_a_pending_url_whose_file_never_came_is_downloaded_again_under_its_reserved_name(server, tmp_path):
    urls = serve_images(server, 1)
    rival = server.route("/other/0.jpg", Reply(200, make_image(5)))  # same name, other picture, asked first
    announce(tmp_path, urls[0], "0.jpg", make_image(0))
    download_images([rival, *urls], tmp_path, concurrency=1, **FAST)
    assert latest(tmp_path)[urls[0]] == ("ok", "0.jpg")
    assert latest(tmp_path)[rival][1].startswith("0-")
    assert (tmp_path / "0.jpg").read_bytes() == make_image(0)


def test_a_pending_name_now_holding_another_file_is_not_adopted_and_the_file_is_kept(server, tmp_path):
    urls = serve_images(server, 1)
    announce(tmp_path, urls[0], "0.jpg", make_image(0))
    (tmp_path / "0.jpg").write_bytes(b"my own picture")
    download_images(urls, tmp_path, **FAST)
    status, file = latest(tmp_path)[urls[0]]
    assert status == "ok" and file.startswith("0-") and (tmp_path / file).read_bytes() == make_image(0)
    assert (tmp_path / "0.jpg").read_bytes() == b"my own picture"


def test_a_temporary_file_a_kill_left_is_removed_by_the_rerun_even_when_the_url_now_fails(server, tmp_path):
    url = server.url("/img/0.jpg")  # no route any more: 404
    announce(tmp_path, url, "cats/0.jpg", make_image(0), label="cats")
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats/.0.jpg.part").write_bytes(make_image(0)[:100])
    summary = download_images([url], tmp_path, **FAST)
    assert summary.failed == 1 and hidden(tmp_path) == []


def test_hidden_files_that_no_pending_row_names_are_left_alone(server, tmp_path):
    urls = serve_images(server, 1)
    for name in (".notes.part", ".7.jpg.part", ".0.jpg.tmp"):
        (tmp_path / name).write_bytes(b"mine")
    download_images(urls, tmp_path, **FAST)
    assert hidden(tmp_path) == [".0.jpg.tmp", ".7.jpg.part", ".notes.part"]


def test_downloaded_files_get_the_permissions_the_umask_allows(server, tmp_path):
    urls = serve_images(server, 1)
    old = os.umask(0o027)
    try:
        download_images(urls, tmp_path, **FAST)
    finally:
        os.umask(old)
    assert (tmp_path / "0.jpg").stat().st_mode & 0o777 == 0o640


def test_a_second_download_into_a_folder_in_use_is_refused_with_one_line(server, tmp_path):
    urls = serve_images(server, 1)
    with ManifestWriter(tmp_path / "manifest.csv"):  # another run holds the folder
        with pytest.raises(PixclassError, match=r"manifest.csv' is in use by another pixclass run .* another --out"):
            download_images(urls, tmp_path, **FAST)
    assert server.hits["/img/0.jpg"] == 0


def test_the_file_writer_never_replaces_a_file_that_appeared_under_the_reserved_name(tmp_path):
    from pixclass.collect.download import _write_new_file

    (tmp_path / "0.jpg").write_bytes(b"my own picture")
    with pytest.raises(FileExistsError):
        _write_new_file(tmp_path / "0.jpg", make_image(0))
    assert (tmp_path / "0.jpg").read_bytes() == b"my own picture" and hidden(tmp_path) == []


def url_file(tmp_path: Path, urls: list[str]) -> Path:
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    return listing


def assert_interrupted_cleanly(out: Path) -> None:
    """After Ctrl-C amid good URLs: no temp files, every kept file named by one row, no failure."""
    assert hidden(out) == []
    latest_rows = {rec.url: rec for rec in read_manifest(out / "manifest.csv")}
    named = [rec.file for rec in latest_rows.values() if rec.status in ("ok", "pending") and (out / rec.file).is_file()]
    assert all((out / rec.file).is_file() for rec in latest_rows.values() if rec.status == "ok")
    assert sorted(named) == sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert [rec.error for rec in latest_rows.values() if rec.status == "failed"] == []  # cancelling is no failure


@pytest.mark.parametrize("event, linked", [
    ("os.link", False),  # the temp file is whole, the image not yet linked to its name
    ("os.remove", True),  # the image is in place, its temp name not yet removed, no ok row
])
def test_a_kill_while_an_image_is_being_stored_is_repaired_by_the_rerun_without_a_second_copy(
        server, tmp_path, event, linked):
    from faults.killer import run_killed_at

    urls = serve_images(server, 3)
    out = tmp_path / "out"
    args = ["download", str(url_file(tmp_path, urls)), "--out", str(out), "--no-progress", "--concurrency", "1"]
    killed = run_killed_at(args, event, ".0.jpg.part")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "0.jpg").exists() == linked and ".0.jpg.part" in hidden(out)
    assert latest(out)[urls[0]] == ("pending", "0.jpg")
    download_images(urls, out, **FAST)
    assert sorted(p.name for p in out.glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg"] and hidden(out) == []
    assert latest(out) == {url: ("ok", f"{i}.jpg") for i, url in enumerate(urls)}
    assert server.hits["/img/0.jpg"] == (1 if linked else 2)


def slow_images(server, n: int, delay: float) -> list[str]:
    return [server.route(f"/slow/{i}.jpg", Reply(200, make_image(i), delay=delay)) for i in range(n)]


def ok_rows(out: Path) -> int:
    try:
        return sum(status == "ok" for status, _ in latest(out).values())
    except PixclassError:
        return 0


@pytest.mark.parametrize("command, n_urls", [("download", 24), ("fetch", 96)])
def test_ctrl_c_exits_130_with_one_line_saying_what_was_kept_and_how_to_go_on(server, tmp_path, command, n_urls):
    from faults.killer import run_and_signal_when, run_pixclass

    urls = slow_images(server, n_urls, delay=0.3)  # 16 at a time to one host (fetch's fixed per_host)
    out = tmp_path / "out"
    url_file(tmp_path, urls)
    if command == "download":
        args = ["download", str(tmp_path / "urls.txt"), "--out", str(out), "--per-host", "4"]
    else:  # the `urls` provider reads the list the query CSV names: no search engine involved
        (tmp_path / "queries.csv").write_text("cats,urls.txt\n")
        args = ["fetch", str(tmp_path / "queries.csv"), "--out", str(out), "-p", "urls", "--max", "100"]
    run = run_and_signal_when(args, lambda: ok_rows(out) >= 3, signal.SIGINT)  # the progress bar is on
    assert run.signalled and run.returncode == 130, run.stderr
    n = count_kept(out)
    assert 3 <= n < n_urls
    assert run.stderr.strip().splitlines()[-1] == (
        f"pixclass: {command} interrupted: {n} images saved and recorded in {out / 'manifest.csv'}; "
        "run the same command again to continue")
    assert "Traceback" not in run.stderr
    assert_interrupted_cleanly(out)
    again = run_pixclass(*args)
    assert again.returncode == 0, again.stderr
    assert count_kept(out) == n_urls and len(list(out.rglob("*.jpg"))) == n_urls


def test_ctrl_c_during_download_images_raises_keyboard_interrupt_and_keeps_the_rows_written(server, tmp_path):
    urls = slow_images(server, 40, delay=0.2)  # 2 s at 4 at a time

    def interrupt(_req):
        time.sleep(0.3)  # a few images are kept by now
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to this (the main) thread
        time.sleep(1)
        return Reply(200, make_image(99))

    ctrl_c = server.route("/ctrl-c.jpg", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download_images([ctrl_c, *urls], tmp_path, per_host=4, **FAST)
    assert 0 < count_kept(tmp_path) < len(urls) and ctrl_c not in latest(tmp_path)
    assert_interrupted_cleanly(tmp_path)


def test_ctrl_c_while_called_from_a_running_loop_stops_the_download(server, tmp_path):
    # As in a notebook: the event loop is busy, so the download runs in a thread of its own.
    urls = slow_images(server, 30, delay=0.2)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()

    async def notebook_cell():
        return download_images(urls, tmp_path, per_host=2, **FAST)

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(notebook_cell())
    finally:
        loop.close()
    assert sum(server.hits.values()) < 30
    assert_interrupted_cleanly(tmp_path)


def test_a_size_the_image_already_fits_keeps_the_downloaded_bytes(server, tmp_path):
    data = make_image(1, size=(80, 40))
    url = server.route("/small.jpg", Reply(200, data))
    record = download_images([url], tmp_path, size=100, **FAST).records[0]
    assert (tmp_path / record.file).read_bytes() == data and (record.width, record.height) == (80, 40)
