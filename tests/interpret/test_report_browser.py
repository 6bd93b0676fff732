"""RUN/report.html opened from disk (file://) in a real headless Chromium (Debian's, driven by
Playwright): every embedded plot decodes and renders, and the full page screenshots.

Set PIXCLASS_SCREENSHOT_DIR to keep the screenshot (as report_screenshot.png in that folder,
e.g. `docs/`); by default it goes to a temporary folder only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefiles import write_class_folders
from webapps import chromium, needs_chromium

pytestmark = needs_chromium
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The report `pixclass train` writes for a tiny colour run (lr_find included)."""
    root = tmp_path_factory.mktemp("report_browser")
    data = write_class_folders(root / "data", 8)
    res = subprocess.run([sys.executable, "-m", "pixclass", "train", str(data), "--arch", "test_efficientnet",
                          "--no-pretrained", "--size", "32", "--bs", "8", "--workers", "0", "--epochs", "3",
                          "--unfreeze-epochs", "0", "--out", str(root / "run")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    return root / "run" / "report.html"


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1200, "height": 900})


def test_every_plot_of_the_report_renders_offline(report, page):
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:"))
               else route.continue_())  # nothing may come from the network
    page.goto(report.as_uri(), wait_until="load")
    widths = page.evaluate("Array.from(document.images).map(img => img.complete ? img.naturalWidth : 0)")
    headings = page.locator("h2").all_inner_texts()

    assert len(widths) == 6
    assert all(w > 0 for w in widths), widths
    assert headings == ["Data", "Training", "Results", "Speed", "Limits", "Diagnosis", "Data issues"]


def test_the_full_page_screenshots_as_a_png(report, page, tmp_path):
    out = Path(os.environ.get("PIXCLASS_SCREENSHOT_DIR") or tmp_path) / "report_screenshot.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.goto(report.as_uri(), wait_until="load")

    page.screenshot(path=str(out), full_page=True)

    data = out.read_bytes()
    assert data[:8] == PNG
    assert len(data) > 20_000
