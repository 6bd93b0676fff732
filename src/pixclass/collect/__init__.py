"""Collecting a dataset: download URL lists, search image providers, verify and quarantine.

    from pixclass.collect import download_images, fetch_images, verify_images

Names are imported on first use, so `import pixclass.collect` stays cheap (and never imports
torch): verify's worker processes only need Pillow.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "download_images": "download",
    "DownloadSummary": "download",
    "fetch_images": "fetch",
    "FetchSummary": "fetch",
    "verify_images": "verify",
    "VerifyReport": "verify",
    "read_url_list": "urls",
    "UrlItem": "urls",
    "read_queries": "queries",
    "ClassQueries": "queries",
    "read_manifest": "manifest",
    "ManifestRecord": "manifest",
    "browser_snippet": "browser",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pixclass.collect' has no attribute '{name}'")
    return getattr(import_module(f"pixclass.collect.{_EXPORTS[name]}"), name)
