"""The browser route: the console snippet ships with the package and is valid JavaScript."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pixclass.collect.browser import bookmarklet, browser_snippet


def test_the_snippet_ships_with_the_package():
    code = browser_snippet()
    assert "a.iusc[m]" in code and 'link.download = "urls.txt"' in code


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
@pytest.mark.parametrize("form", ["snippet", "bookmarklet"])
def test_the_snippet_and_bookmarklet_parse_as_javascript(tmp_path, form):
    from urllib.parse import unquote

    code = browser_snippet() if form == "snippet" else unquote(bookmarklet().removeprefix("javascript:"))
    path = tmp_path / "snippet.js"
    path.write_text(code)
    subprocess.run(["node", "--check", str(path)], check=True, timeout=30)
