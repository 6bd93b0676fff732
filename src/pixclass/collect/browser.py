"""The browser route: a console snippet (and bookmarklet) that saves a results page's image URLs.

For when every search provider is blocked: search in a normal browser, run the snippet, and
feed the downloaded `urls.txt` to `pixclass download`. Print it with
`python -m pixclass.collect.browser` (add `--bookmarklet` for the one-line bookmark form).
"""

from __future__ import annotations

import sys
from importlib.resources import files
from urllib.parse import quote


def browser_snippet() -> str:
    """The JavaScript to paste into the browser console (`static/save_urls.js`)."""
    return files("pixclass.collect").joinpath("static/save_urls.js").read_text(encoding="utf-8")


def bookmarklet() -> str:
    """The snippet as a `javascript:` URL to save as a bookmark (one line, `//` comment lines dropped;
    so the snippet keeps every `//` comment on a line of its own)."""
    lines = [ln.strip() for ln in browser_snippet().splitlines()]
    code = " ".join(ln for ln in lines if ln and not ln.startswith("//"))
    return "javascript:" + quote(code, safe="(){}[];,=>.:'!*+-/?&|$\\\"<> ")


if __name__ == "__main__":
    print(bookmarklet() if "--bookmarklet" in sys.argv[1:] else browser_snippet())
