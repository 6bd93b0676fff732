"""fetch_images: query CSV -> providers -> de-duplicated downloads in one folder per class."""

from __future__ import annotations

import pytest

from collect_helpers import Reply, bing_page, make_image
from pixclass.cli import main
from pixclass.collect import fetch_images, read_manifest
from pixclass.errors import PixclassError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bing(server):
    """A fake Bing whose results point at images served by the same local server."""
    for i in range(6):
        server.route(f"/img/{i}.jpg", Reply(200, make_image(i)))

    def page(req):
        picks = {"coral snake": [0, 1, 2], "micrurus": [2, 3], "kingsnake": [4, 5]}[req.query["q"]]
        return Reply(200, bing_page([server.url(f"/img/{i}.jpg") for i in picks]).encode())

    server.route("/images/async", page)
    return {"bing": {"base_url": server.base}}


def test_fetch_downloads_each_class_into_its_folder(tmp_path, bing):
    queries = tmp_path / "snakes.csv"
    queries.write_text("coral snake,coral snake;micrurus\nkingsnake\n")
    summary = fetch_images(queries, tmp_path / "out", providers=["bing"], provider_options=bing, progress=False)
    assert summary.found == {"coral snake": 4, "kingsnake": 2}  # img 2 came twice: kept once
    assert sorted(p.name for p in (tmp_path / "out/coral snake").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    rows = read_manifest(tmp_path / "out/manifest.csv")
    assert {(r.provider, r.query) for r in rows if r.file == "coral snake/3.jpg"} == {("bing", "micrurus")}


def test_max_per_class_caps_each_class(tmp_path, bing):
    queries = tmp_path / "q.csv"
    queries.write_text("coral snake,coral snake;micrurus\n")
    summary = fetch_images(queries, tmp_path / "out", providers=["bing"], provider_options=bing,
                           max_per_class=2, progress=False)
    assert summary.found == {"coral snake": 2}


def test_a_failing_provider_costs_one_line_and_the_others_carry_on(tmp_path, bing, monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    queries = tmp_path / "q.csv"
    queries.write_text("coral snake\nkingsnake\n")
    lines: list[str] = []
    summary = fetch_images(queries, tmp_path / "out", providers=["flickr", "bing"], provider_options=bing,
                           on_error=lines.append, progress=False)
    assert lines == ["flickr: no API key: set FLICKR_API_KEY (a free key from Flickr's App Garden) "
                     "or leave out --provider flickr"]
    assert summary.download.ok == 5


def test_results_shared_by_two_providers_are_downloaded_once(tmp_path, server, bing):
    (tmp_path / "coral.txt").write_text(server.url("/img/0.jpg") + "\n")
    queries = tmp_path / "q.csv"
    queries.write_text("coral snake,coral snake\ncoral snake,coral.txt\n")
    summary = fetch_images(queries, tmp_path / "out", providers=["bing", "urls"], provider_options=bing,
                           on_error=lambda line: None, progress=False)
    assert summary.found == {"coral snake": 3}
    assert server.hits["/img/0.jpg"] == 1


def test_nothing_found_anywhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    queries = tmp_path / "q.csv"
    queries.write_text("coral snake\n")
    with pytest.raises(PixclassError, match="no image URLs found for any class"):
        fetch_images(queries, tmp_path / "out", providers=["flickr"], on_error=lambda line: None, progress=False)


def test_cli_fetch_reports_provider_failures_and_counts(tmp_path, server, bing, capsys, monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    urls = tmp_path / "coral.txt"
    urls.write_text("\n".join(server.url(f"/img/{i}.jpg") for i in range(3)))
    queries = tmp_path / "q.csv"
    queries.write_text("class,terms\ncoral snake,coral.txt\n")
    with pytest.raises(SystemExit) as exit_info:  # the entry point always exits
        main(["fetch", str(queries), "--out", str(tmp_path / "out"), "-p", "flickr", "-p", "urls", "--no-progress"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == ("pixclass: warning: flickr: no API key: set FLICKR_API_KEY "
                                    "(a free key from Flickr's App Garden) or leave out --provider flickr")
    assert "coral snake: 3 new URLs found" in captured.out and "3 downloaded" in captured.out


def test_a_blocked_search_page_does_not_stop_the_other_providers(tmp_path, server):
    server.route("/images/async", Reply(403, b"Forbidden"))
    server.route("/img/0.jpg", Reply(200, make_image(0)))
    (tmp_path / "coral.txt").write_text(server.url("/img/0.jpg") + "\n")
    queries = tmp_path / "q.csv"
    queries.write_text("coral snake,coral.txt\n")
    lines: list[str] = []
    summary = fetch_images(queries, tmp_path / "out", providers=["bing", "urls"],
                           provider_options={"bing": {"base_url": server.base}}, on_error=lines.append, progress=False)
    assert lines == [
        "bing: the image search page answered HTTP 403 (blocked or rate-limited; wait, or use another provider)"]
    assert summary.download.ok == 1


def test_a_rerun_tops_classes_up_to_max_instead_of_growing_past_it(tmp_path, bing, server):
    queries = tmp_path / "q.csv"
    queries.write_text("coral snake,coral snake;micrurus\n")
    first = fetch_images(queries, tmp_path / "out", providers=["bing"], provider_options=bing,
                         max_per_class=2, progress=False)
    searches = server.hits["/images/async"]
    again = fetch_images(queries, tmp_path / "out", providers=["bing"], provider_options=bing,
                         max_per_class=2, progress=False)
    assert (first.download.ok, again.download.ok) == (2, 0)
    assert server.hits["/images/async"] == searches  # a full class is not searched again
    more = fetch_images(queries, tmp_path / "out", providers=["bing"], provider_options=bing,
                        max_per_class=3, progress=False)
    assert more.found == {"coral snake": 1} and more.download.ok == 1
    assert len(list((tmp_path / "out/coral snake").iterdir())) == 3
