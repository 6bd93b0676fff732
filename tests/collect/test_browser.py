"""The browser route: the console snippet ships with the package and finds the right URLs."""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import unquote

import pytest

from pixclass.collect.browser import bookmarklet, browser_snippet

needs_node = pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")

# A results page reduced to what the snippet reads: elements answering querySelectorAll.
FAKE_PAGE = r"""
const imageUrls = require(process.argv[2]);
const el = (props) => ({ getAttribute: (k) => (props[k] === undefined ? null : props[k]), ...props });
const pages = {
  bing: {
    "a.iusc[m]": [el({ m: JSON.stringify({ murl: "https://img.example/a.jpg", turl: "https://tse/t" }) }),
                  el({ m: "{not json" }),
                  el({ m: JSON.stringify({ murl: "javascript:alert(1)" }) })],
    "a[href]": [el({ href: "https://www.bing.com/images/search?view=detail&mediaurl=https%3A%2F%2Fimg.example%2Fb.png&x=1",
                     pathname: "/images/search" }),
                el({ href: "https://img.example/a.jpg", pathname: "/a.jpg" }),
                el({ href: "https://example.org/about", pathname: "/about" })],
    "img": [el({ naturalWidth: 300, naturalHeight: 200, src: "https://tse/thumb.jpg" })],
  },
  thumbnails_only: {
    "img": [el({ naturalWidth: 300, naturalHeight: 200, currentSrc: "https://tse/1.jpg" }),
            el({ naturalWidth: 16, naturalHeight: 16, src: "https://tse/icon.png" }),
            el({ naturalWidth: 300, naturalHeight: 200, src: "data:image/jpeg;base64,AAAA" })],
  },
};
const doc = (name) => ({ querySelectorAll: (sel) => pages[name][sel] || [] });
console.log(JSON.stringify({
  bing: imageUrls(doc("bing"), "https://www.bing.com/images/search?q=x"),
  thumbnails_only: imageUrls(doc("thumbnails_only"), "https://duckduckgo.com/"),
}));
"""


def test_the_snippet_ships_with_the_package():
    assert 'link.download = "urls.txt"' in browser_snippet()


@needs_node
def test_the_snippet_collects_full_size_urls_and_falls_back_to_thumbnails(tmp_path):
    snippet = tmp_path / "save_urls.js"
    snippet.write_text(browser_snippet())
    page = tmp_path / "page.js"
    page.write_text(FAKE_PAGE)
    out = subprocess.run(["node", str(page), str(snippet)], check=True, capture_output=True, text=True, timeout=30)
    found = json.loads(out.stdout)
    assert found["bing"] == ["https://img.example/a.jpg", "https://img.example/b.png"]
    assert found["thumbnails_only"] == ["https://tse/1.jpg"]


@needs_node
def test_the_bookmarklet_is_the_same_code_on_one_line(tmp_path):
    code = unquote(bookmarklet().removeprefix("javascript:"))
    assert "\n" not in code
    path = tmp_path / "bookmarklet.js"
    path.write_text(code)
    subprocess.run(["node", "--check", str(path)], check=True, timeout=30)
