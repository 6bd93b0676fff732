"""Image search providers behind one interface, looked up by name.

    get_provider("bing", base_url="http://127.0.0.1:8000")

Built in: `ddg` (DuckDuckGo via ddgs), `bing`, `flickr` (API key) and `urls` (a URL list file
per query). `register_provider` adds another: any class with `name` and `search`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pixclass.collect.providers.base import Provider, ProviderError, SearchResult
from pixclass.errors import PixclassError

__all__ = ["Provider", "ProviderError", "SearchResult", "get_provider", "register_provider", "provider_names"]


def _ddg(**kw: Any) -> Provider:
    from pixclass.collect.providers.ddg import DuckDuckGoProvider

    return DuckDuckGoProvider(**kw)


def _bing(**kw: Any) -> Provider:
    from pixclass.collect.providers.bing import BingProvider

    return BingProvider(**kw)


def _flickr(**kw: Any) -> Provider:
    from pixclass.collect.providers.flickr import FlickrProvider

    return FlickrProvider(**kw)


def _urls(**kw: Any) -> Provider:
    from pixclass.collect.providers.urls import UrlsProvider

    return UrlsProvider(**kw)


_REGISTRY: dict[str, Callable[..., Provider]] = {"ddg": _ddg, "bing": _bing, "flickr": _flickr, "urls": _urls}


def register_provider(name: str, factory: Callable[..., Provider]) -> None:
    """Make `get_provider(name, **options)` build a provider with `factory(**options)`."""
    _REGISTRY[name] = factory


def provider_names() -> list[str]:
    return sorted(_REGISTRY)


def get_provider(name: str, **options: Any) -> Provider:
    """Build the provider called `name` (options go to its constructor, e.g. `base_url`).

    Args:
        name: one of `provider_names()`.
        **options: constructor arguments of that provider.
    """
    if name not in _REGISTRY:
        raise PixclassError(f"unknown provider '{name}'; choose from: {', '.join(provider_names())}")
    return _REGISTRY[name](**options)
