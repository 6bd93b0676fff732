"""Flickr photos through the official REST API (`flickr.photos.search`), key from FLICKR_API_KEY.

Results carry their licence, so a dataset can be limited to reusable photos (`license="4,5,9,10"`).
The large size (`url_l`, 1024 px) is preferred to the original (`url_o`), which can be huge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx

from pixclass.collect.providers.base import ProviderError, SearchResult, http_failure

FLICKR_URL = "https://api.flickr.com/services/rest/"
PER_PAGE_MAX = 500
# flickr.photos.licenses.getInfo, stable for years.
LICENSES = {
    "0": "All Rights Reserved", "1": "CC BY-NC-SA 2.0", "2": "CC BY-NC 2.0", "3": "CC BY-NC-ND 2.0",
    "4": "CC BY 2.0", "5": "CC BY-SA 2.0", "6": "CC BY-ND 2.0", "7": "No known copyright restrictions",
    "8": "United States Government Work", "9": "CC0 1.0", "10": "Public Domain Mark 1.0",
}


class FlickrProvider:
    """Flickr photo search.

    Args:
        api_key: Flickr API key; default: the FLICKR_API_KEY environment variable.
        base_url: the REST endpoint (tests point it at a local server).
        license: optional comma-separated Flickr licence ids to restrict results to.
        timeout: seconds per API call.
    """

    name = "flickr"

    def __init__(self, api_key: str | None = None, base_url: str = FLICKR_URL,
                 license: str | None = None, timeout: float = 15.0):
        self.api_key = api_key if api_key is not None else os.environ.get("FLICKR_API_KEY", "")
        self.base_url = base_url
        self.license = license
        self.timeout = timeout

    def search(self, query: str, max_results: int) -> Iterator[SearchResult]:
        if not self.api_key:
            raise ProviderError(self.name, "no API key: set FLICKR_API_KEY (a free key from Flickr's "
                                "App Garden) or leave out --provider flickr", fatal=True)
        per_page = min(PER_PAGE_MAX, max(1, max_results))
        found = 0
        with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
            for page in range(1, max_results // per_page + 3):  # bounded
                photos = self._call(client, query, page, per_page)
                for photo in photos.get("photo", []):
                    result = self._result(photo, query)
                    if result:
                        found += 1
                        yield result
                        if found >= max_results:
                            return
                if page >= int(photos.get("pages") or 0):
                    return

    def _call(self, client: httpx.Client, query: str, page: int, per_page: int) -> dict[str, Any]:
        params = {
            "method": "flickr.photos.search", "api_key": self.api_key, "text": query,
            "extras": "url_o,url_l,license", "per_page": per_page, "page": page,
            "sort": "relevance", "content_type": 1, "media": "photos",
            "format": "json", "nojsoncallback": 1,
        }
        if self.license:
            params["license"] = self.license
        try:
            resp = client.get(self.base_url, params=params)
        except httpx.HTTPError as err:
            raise ProviderError(self.name, f"cannot reach the API: {type(err).__name__} {err}") from None
        if resp.status_code != 200:
            raise http_failure(self.name, resp.status_code, "the API")
        try:
            data = resp.json()
        except ValueError:
            raise ProviderError(self.name, "the API answered something that is not JSON") from None
        if data.get("stat") != "ok":
            code, message = data.get("code"), data.get("message", "unknown error")
            raise ProviderError(self.name, f"API error {code}: {message}", fatal=code in (100, 105))
        return data.get("photos") or {}

    def _result(self, photo: dict[str, Any], query: str) -> SearchResult | None:
        for size in ("l", "o"):
            url = photo.get(f"url_{size}")
            if url:
                return SearchResult(
                    url=url, provider=self.name, query=query, title=str(photo.get("title", "")),
                    page=f"https://www.flickr.com/photos/{photo.get('owner', '')}/{photo.get('id', '')}",
                    license=LICENSES.get(str(photo.get("license", "")), str(photo.get("license", ""))),
                    width=int(photo.get(f"width_{size}") or 0), height=int(photo.get(f"height_{size}") or 0),
                )
        return None
