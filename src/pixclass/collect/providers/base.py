"""The provider interface: a name and `search(query, max_results) -> SearchResult`s.

A provider turns a search term into image URLs and nothing more; downloading is shared.
Providers raise `ProviderError` with one clear line (blocked, page changed, no API key);
`fatal=True` means retrying with another query is pointless (missing key or package).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pixclass.errors import PixclassError


@dataclass(frozen=True)
class SearchResult:
    """One image found by a provider."""

    url: str  # the image itself
    provider: str
    query: str
    title: str = ""
    page: str = ""  # the page showing it
    license: str = ""
    width: int = 0
    height: int = 0


class ProviderError(PixclassError):
    """A provider could not search: its message is one line starting with the provider name."""

    def __init__(self, provider: str, message: str, *, fatal: bool = False):
        self.provider = provider
        self.fatal = fatal
        super().__init__(f"{provider}: {message}")


@runtime_checkable
class Provider(Protocol):
    """Anything with a `name` and a `search` method is a provider."""

    name: str

    def search(self, query: str, max_results: int) -> Iterable[SearchResult]:
        """Up to `max_results` images for `query`, best first."""
        ...


def http_failure(provider: str, status: int, what: str) -> ProviderError:
    """The one-line error for a non-200 answer from a search endpoint."""
    if status in (401, 403, 429):
        hint = "blocked or rate-limited; wait, or use another provider"
    elif status >= 500:
        hint = "the service is failing; try again later"
    else:
        hint = "the endpoint may have changed; update pixclass or use another provider"
    return ProviderError(provider, f"{what} answered HTTP {status} ({hint})")
