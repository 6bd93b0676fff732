"""Search providers against recorded-shape responses served on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from collect_helpers import Reply, bing_page
from pixclass.collect.providers import ProviderError, get_provider, provider_names

pytestmark = pytest.mark.timeout(60)


def flickr_photo(i: int, **sizes: str) -> dict:
    return {"id": str(5000 + i), "owner": "12345@N00", "secret": "abc", "server": "65535", "farm": 66,
            "title": f"snake {i}", "ispublic": 1, "isfriend": 0, "isfamily": 0, "license": "4", **sizes}


def test_bing_reads_image_urls_from_the_result_page(server):
    server.route("/images/async", lambda req: Reply(200, bing_page(
        [f"https://img.example/{req.query['q']}/{i}.jpg" for i in range(3)]).encode()))
    bing = get_provider("bing", base_url=server.base)
    results = list(bing.search("coral", 10))
    assert [r.url for r in results] == [f"https://img.example/coral/{i}.jpg" for i in range(3)]
    assert results[0].title == "Coral 0" and results[0].page == "https://page/0"


def test_bing_pages_until_it_has_enough(server):
    def page(req):
        first = int(req.query["first"])
        return Reply(200, bing_page([f"https://img.example/{first + i}.jpg" for i in range(35)]).encode())

    server.route("/images/async", page)
    results = list(get_provider("bing", base_url=server.base).search("coral", 50))
    assert len(results) == 50 and server.hits["/images/async"] == 2


def test_bing_stops_when_a_page_brings_nothing_new(server):
    server.route("/images/async", Reply(200, bing_page(["https://img.example/same.jpg"]).encode()))
    results = list(get_provider("bing", base_url=server.base).search("coral", 500))
    assert len(results) == 1 and server.hits["/images/async"] == 2


def test_bing_says_clearly_when_the_page_has_changed(server):
    server.route("/images/async", Reply(200, b"<html><body>Please solve this puzzle</body></html>"))
    with pytest.raises(ProviderError, match="bing: no image results in the page for 'coral'.*layout changed"):
        list(get_provider("bing", base_url=server.base).search("coral", 10))


def test_bing_says_clearly_when_blocked(server):
    server.route("/images/async", Reply(403, b"Forbidden"))
    with pytest.raises(ProviderError, match=r"bing: the image search page answered HTTP 403 \(blocked"):
        list(get_provider("bing", base_url=server.base).search("coral", 10))


def test_flickr_prefers_the_large_size_and_keeps_the_licence(server, monkeypatch):
    monkeypatch.setenv("FLICKR_API_KEY", "k123")
    photos = [flickr_photo(0, url_l="https://live.example/0_b.jpg", url_o="https://live.example/0_o.jpg",
                           width_l="1024", height_l="768"),
              flickr_photo(1, url_o="https://live.example/1_o.jpg"),
              flickr_photo(2)]  # neither size offered: skipped
    body = {"photos": {"page": 1, "pages": 1, "perpage": 100, "total": "3", "photo": photos}, "stat": "ok"}
    server.route("/rest/", lambda req: Reply(200, json.dumps(body).encode()) if req.query.get("api_key") == "k123"
                 and req.query["method"] == "flickr.photos.search" and "url_l" in req.query["extras"]
                 else Reply(400, b"bad request"))
    results = list(get_provider("flickr", base_url=server.url("/rest/")).search("milk snake", 10))
    assert [r.url for r in results] == ["https://live.example/0_b.jpg", "https://live.example/1_o.jpg"]
    assert results[0].license == "CC BY 2.0" and (results[0].width, results[0].height) == (1024, 768)


def test_flickr_without_a_key_is_one_clear_fatal_line(monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="flickr: no API key: set FLICKR_API_KEY") as err:
        list(get_provider("flickr", base_url="http://127.0.0.1:9/").search("snake", 10))
    assert err.value.fatal


def test_flickr_reports_api_errors(server):
    server.route("/rest/",
                 Reply(200, b'{"stat":"fail","code":100,"message":"Invalid API Key (Key has invalid format)"}'))
    with pytest.raises(ProviderError, match=r"flickr: API error 100: Invalid API Key"):
        list(get_provider("flickr", api_key="bad", base_url=server.url("/rest/")).search("snake", 10))


def ddg_routes(server, results: list[dict]) -> None:
    """The two DuckDuckGo answers ddgs needs: a page with the vqd token, then i.js JSON."""
    server.route("/", Reply(200, b'<html><script>vqd="4-33445566778899";</script></html>'))
    server.route("/i.js", lambda req: Reply(200, json.dumps({"results": results}).encode())
                 if req.query.get("vqd") == "4-33445566778899" else Reply(403, b""))


def ddg(proxy):
    # The real ddgs client, tunnelled through our local proxy: nothing leaves 127.0.0.1.
    return get_provider("ddg", proxy=proxy.url, verify=False, timeout=10)


def test_ddg_maps_ddgs_results(server, proxy):
    ddg_routes(server, [{"title": "Coral snake", "image": "https://img.example/coral.jpg", "thumbnail": "t",
                         "url": "https://page.example/coral", "height": 600, "width": 800, "source": "Bing"},
                        {"title": "no image", "image": "", "url": "u"}])
    results = list(ddg(proxy).search("coral snake", 5))
    assert [r.url for r in results] == ["https://img.example/coral.jpg"]
    assert (results[0].width, results[0].page, results[0].provider) == (800, "https://page.example/coral", "ddg")
    assert proxy.tunnels == ["CONNECT duckduckgo.com:443 HTTP/1.1"] * len(proxy.tunnels)


def test_ddg_blocked_is_one_clear_line(server, proxy):
    server.route("/", Reply(200, b"<html>no token here</html>"))
    with pytest.raises(ProviderError, match=r"^ddg: blocked or the page changed \(no search token from DuckDuckGo\)"):
        list(ddg(proxy).search("coral snake", 5))


def test_urls_provider_reads_a_list_file(tmp_path):
    (tmp_path / "coral.txt").write_text("https://a.example/1.jpg\nhttps://a.example/2.jpg\n")
    results = list(get_provider("urls", base_dir=tmp_path).search("coral.txt", 1))
    assert [r.url for r in results] == ["https://a.example/1.jpg"]


def test_urls_provider_names_a_missing_file(tmp_path):
    with pytest.raises(ProviderError, match="urls: 'nope.txt' is not a URL list file"):
        list(get_provider("urls", base_dir=tmp_path).search("nope.txt", 5))


def test_an_unknown_provider_lists_the_known_ones():
    with pytest.raises(Exception, match="unknown provider 'google'; choose from: bing, ddg, flickr, urls"):
        get_provider("google")
    assert provider_names() == ["bing", "ddg", "flickr", "urls"]


def test_ddg_with_no_results_says_so(server, proxy):
    ddg_routes(server, [])
    with pytest.raises(ProviderError, match=r"^ddg: no results \(the query may be too narrow"):
        list(ddg(proxy).search("coral snake", 5))
