"""The `urls` provider: a "query" is a URL list file, e.g. one saved by the browser snippet.

It lets a query CSV mix searched classes with hand-collected ones (`coral snake,coral.txt`);
relative paths are taken from the query CSV's folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pixclass.collect.providers.base import ProviderError, SearchResult
from pixclass.collect.urls import read_url_list
from pixclass.errors import PixclassError


class UrlsProvider:
    """Reads image URLs from the file named by the query.

    Args:
        base_dir: folder that relative file names are resolved against.
    """

    name = "urls"

    def __init__(self, base_dir: str | Path = "."):
        self.base_dir = Path(base_dir)

    def search(self, query: str, max_results: int) -> Iterator[SearchResult]:
        path = self.base_dir / query
        if not path.is_file():
            raise ProviderError(self.name, f"'{query}' is not a URL list file (looked for '{path}')")
        try:
            items = read_url_list(path)
        except PixclassError as err:
            raise ProviderError(self.name, str(err)) from None
        for item in items[:max_results]:
            yield SearchResult(url=item.url, provider=self.name, query=query)
