"""Searching providers for each class of a query CSV, then downloading into `out/<class>/`.

Every (query, provider) pair is asked for up to `max_per_class` images; the lists are
interleaved (so every query and provider is represented), de-duplicated by URL across providers,
queries and classes (the first class keeps a shared URL), cut to `max_per_class`, and handed to
`download_images`. A rerun counts the images each class already has (from the manifest) and only
tops it up to `max_per_class`; a full class is not searched again. A failing provider costs one
line and the others carry on; a provider that can never work in this run (no key, missing
package) is not asked again.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pixclass.collect.download import DownloadSummary, download_images
from pixclass.collect.manifest import read_manifest
from pixclass.collect.progress import counting_progress
from pixclass.collect.providers import Provider, ProviderError, SearchResult, get_provider
from pixclass.collect.queries import ClassQueries, read_queries
from pixclass.collect.urls import UrlItem
from pixclass.errors import PixclassError


@dataclass
class FetchSummary:
    """URLs found per class, provider failures (one line each), and the download's summary."""

    out: Path
    found: dict[str, int] = field(default_factory=dict)  # new URLs per class, handed to download
    already: Counter[str] = field(default_factory=Counter)  # images per class kept by earlier runs
    errors: list[str] = field(default_factory=list)
    download: DownloadSummary | None = None

    def __str__(self) -> str:
        found = ", ".join(f"{label}: {n}" for label, n in self.found.items())
        return f"found {found}; {self.download}"


def fetch_images(
    queries: str | Path | Sequence[ClassQueries],
    out: str | Path,
    *,
    providers: Iterable[str | Provider] = ("ddg",),
    max_per_class: int = 100,
    provider_options: dict[str, dict[str, Any]] | None = None,
    on_error: Callable[[str], None] | None = None,
    progress: bool = True,
    **download_options: Any,
) -> FetchSummary:
    """Search images for every class in `queries` and download them into `out/<class>/`.

    Args:
        queries: a query CSV (see `read_queries`) or a list of `ClassQueries`.
        out: destination folder; `out/manifest.csv` records every URL.
        providers: provider names (`ddg`, `bing`, `flickr`, `urls`) or provider objects.
        max_per_class: images to aim for per class, over all its queries and providers.
        provider_options: constructor options per provider name, e.g. `{"bing": {"base_url": ...}}`.
        on_error: called with each one-line provider failure (default: print to stderr).
        progress: show progress bars on stderr.
        **download_options: passed to `download_images` (`size`, `pad`, `timeout`, ...).
    """
    if max_per_class <= 0:
        raise PixclassError(f"max_per_class must be positive, got {max_per_class}")
    classes = read_queries(queries) if isinstance(queries, (str, Path)) else list(queries)
    options = dict(provider_options or {})
    if isinstance(queries, (str, Path)):  # url list files are named relative to the CSV
        options.setdefault("urls", {}).setdefault("base_dir", Path(queries).parent)
    active = [p if not isinstance(p, str) else get_provider(p, **options.get(p, {})) for p in providers]
    if not active:
        raise PixclassError("no provider given: use --provider ddg (or bing, flickr, urls)")
    summary = FetchSummary(out=Path(out))
    summary.already, settled = _already_kept(Path(out))
    report = on_error or (lambda line: print(f"pixclass: warning: {line}", file=sys.stderr))
    items = _search_all(classes, active, max_per_class, summary, report, progress, settled)
    wanted = any(summary.already[c.label] < max_per_class for c in classes)
    if not items and wanted:
        raise PixclassError("no image URLs found for any class; see the provider messages above")
    summary.download = download_images(items, out, progress=progress, **download_options)
    return summary


def _already_kept(out: Path) -> tuple[Counter[str], set[str]]:
    """Images per class kept by earlier runs, and the URLs those runs settled (ok or duplicate)."""
    latest = {r.url: r for r in read_manifest(out / "manifest.csv")}
    kept = Counter(r.label for r in latest.values() if r.status == "ok" and (out / r.file).is_file())
    return kept, {url for url, r in latest.items() if r.status in ("ok", "duplicate")}


def _search_all(classes: list[ClassQueries], active: list[Provider], max_per_class: int,
                summary: FetchSummary, report: Callable[[str], None], progress: bool,
                settled: set[str]) -> list[UrlItem]:
    seen = set(settled)  # a rerun tops classes up with new URLs instead of growing past the max
    items: list[UrlItem] = []
    steps = sum(len(c.queries) for c in classes) * len(active)
    with counting_progress("search", steps, ["found"], progress) as update:
        for cls in classes:
            missing = max_per_class - summary.already[cls.label]
            if missing <= 0:  # full from an earlier run: no need to ask anyone
                update(advance=len(cls.queries) * len(active))
                summary.found[cls.label] = 0
                continue
            lists = []
            for query in cls.queries:
                for provider in list(active):
                    lists.append(_ask(provider, query, max_per_class, active, summary, report))
                    update()
            chosen = _interleave(lists, seen, missing)
            items += [UrlItem(r.url, label=cls.label, provider=r.provider, query=r.query, license=r.license)
                      for r in chosen]
            summary.found[cls.label] = len(chosen)
            update(advance=0, found=len(items))
    return items


def _ask(provider: Provider, query: str, n: int, active: list[Provider],
         summary: FetchSummary, report: Callable[[str], None]) -> list[SearchResult]:
    if provider not in active:  # disabled by an earlier fatal error
        return []
    try:
        return list(provider.search(query, n))
    except ProviderError as err:
        message = str(err)
        if err.fatal:
            active.remove(provider)
    except Exception as err:  # noqa: BLE001 - a broken provider must not stop the others
        message = f"{provider.name}: failed on '{query}' ({type(err).__name__}: {err})"
    summary.errors.append(message)
    report(message)
    return []


def _interleave(lists: list[list[SearchResult]], seen: set[str], limit: int) -> list[SearchResult]:
    chosen = []
    for row in zip_longest(*lists):
        for result in row:
            if result is None or result.url in seen:
                continue
            seen.add(result.url)
            chosen.append(result)
            if len(chosen) >= limit:
                return chosen
    return chosen
