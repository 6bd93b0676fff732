"""Bing images, scraped from the `images/async` result pages (no key needed).

Each result is an `<a class="iusc" m="{...}">` whose `m` attribute holds JSON with `murl` (the
image), `purl` (its page) and `t` (title). Bing changes this page from time to time: a page
without those links is reported as a clear error rather than as "no images".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx

from pixclass.collect.providers.base import ProviderError, SearchResult, http_failure

BING_URL = "https://www.bing.com"
PAGE_SIZE = 35
_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Accept-Language": "en-US,en;q=0.8",
}


class BingProvider:
    """Bing image search.

    Args:
        base_url: scheme and host of Bing (tests point it at a local server).
        timeout: seconds per page request.
    """

    name = "bing"

    def __init__(self, base_url: str = BING_URL, timeout: float = 15.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def search(self, query: str, max_results: int) -> Iterator[SearchResult]:
        seen: set[str] = set()
        with httpx.Client(headers=_HEADERS, timeout=self.timeout, follow_redirects=True) as client:
            for page in range(max_results // PAGE_SIZE + 2):  # bounded: Bing may repeat pages forever
                html = self._page(client, query, first=1 + page * PAGE_SIZE)
                items = parse_results(html)
                if page == 0 and not items and "iusc" not in html:
                    raise ProviderError(self.name, f"no image results in the page for '{query}' "
                                        f"({len(html)} characters of HTML; blocked, or the page layout changed)")
                new = [r for r in items if r["murl"] not in seen]
                for item in new:
                    seen.add(item["murl"])
                    yield SearchResult(url=item["murl"], provider=self.name, query=query,
                                       title=item.get("t", ""), page=item.get("purl", ""))
                    if len(seen) >= max_results:
                        return
                if not new:
                    return

    def _page(self, client: httpx.Client, query: str, first: int) -> str:
        url = f"{self.base_url}/images/async"
        params = {"q": query, "first": first, "count": PAGE_SIZE, "mmasync": 1}
        try:
            resp = client.get(url, params=params)
        except httpx.HTTPError as err:
            raise ProviderError(self.name, f"cannot reach {self.base_url}: {type(err).__name__} {err}") from None
        if resp.status_code != 200:
            raise http_failure(self.name, resp.status_code, "the image search page")
        return resp.text


class _IuscParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag != "a" or "iusc" not in (a.get("class") or "").split() or not a.get("m"):
            return
        try:
            meta = json.loads(a["m"] or "")  # HTMLParser already unescaped &quot;
        except json.JSONDecodeError:
            return
        if isinstance(meta, dict) and str(meta.get("murl", "")).startswith(("http://", "https://")):
            self.items.append({k: str(v) for k, v in meta.items() if k in ("murl", "purl", "t")})


def parse_results(html: str) -> list[dict[str, str]]:
    """The `m` JSON of every result link in a Bing images page."""
    parser = _IuscParser()
    parser.feed(html)
    parser.close()
    return parser.items
