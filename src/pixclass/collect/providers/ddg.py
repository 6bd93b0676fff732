"""DuckDuckGo images through the maintained `ddgs` package (`pip install 'pixclass[search]'`).

The package owns the fragile part (the `vqd` token dance, headers); we map its result dicts
(`image`, `title`, `url`, `width`, `height`) to `SearchResult`s and its exceptions to one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pixclass.collect.providers.base import ProviderError, SearchResult


class DuckDuckGoProvider:
    """DuckDuckGo image search.

    Args:
        client: an object with `images(query, max_results=..., backend=...)` returning dicts;
            default: `ddgs.DDGS(proxy=proxy, timeout=timeout, verify=verify)`.
        backend: the ddgs images backend (`duckduckgo`; `auto` lets ddgs pick).
        proxy: an http(s)/socks5 proxy for ddgs (also read from DDGS_PROXY).
        timeout: seconds for the whole search.
        verify: TLS verification, True, False or a CA bundle path.
        safesearch: `on`, `moderate` or `off`.
    """

    name = "ddg"

    def __init__(self, client: Any = None, backend: str = "duckduckgo", proxy: str | None = None,
                 timeout: float = 15.0, verify: bool | str = True, safesearch: str = "moderate"):
        self._client = client
        self.backend, self.proxy, self.timeout, self.verify = backend, proxy, timeout, verify
        self.safesearch = safesearch

    def _get_client(self) -> Any:
        if self._client is None:
            try:
                from ddgs import DDGS
            except ImportError:
                raise ProviderError(self.name, "needs the 'ddgs' package: pip install 'pixclass[search]'",
                                    fatal=True) from None
            self._client = DDGS(proxy=self.proxy, timeout=int(self.timeout), verify=self.verify)
        return self._client

    def search(self, query: str, max_results: int) -> Iterator[SearchResult]:
        client = self._get_client()
        try:
            found = client.images(query, max_results=max_results, backend=self.backend,
                                  safesearch=self.safesearch)
        except Exception as err:  # noqa: BLE001 - ddgs raises its own family; all mean "no results"
            raise ProviderError(self.name, _explain(err)) from None
        for item in found[:max_results]:
            url = str(item.get("image") or "")
            if url.startswith(("http://", "https://")):
                yield SearchResult(url=url, provider=self.name, query=query, title=str(item.get("title") or ""),
                                   page=str(item.get("url") or ""), width=_int(item.get("width")),
                                   height=_int(item.get("height")))


def _explain(err: Exception) -> str:
    kind = type(err).__name__
    text = str(err).splitlines()[0][:160] if str(err) else ""
    if "Ratelimit" in kind or "403" in text or "202" in text:
        return f"rate-limited or blocked ({kind}); wait a few minutes or use another provider"
    if "Timeout" in kind or "timed out" in text:
        return f"timed out ({text or kind}); check the connection or raise the timeout"
    if "vqd" in text:
        return ("blocked or the page changed (no search token from DuckDuckGo); try again later, "
                "upgrade ddgs, or use another provider")
    if "No results" in text:
        return "no results (the query may be too narrow, or the page format changed: try upgrading ddgs)"
    return f"search failed ({kind}: {text}); try upgrading ddgs or use another provider"


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
