"""`clean_in_notebook`: the cleaner served from a background thread, shown as an iframe, stopped cleanly."""

from __future__ import annotations

import httpx

from cleaner_helpers import colour_folders
from pixclass.cleaner.notebook import clean_in_notebook
from pixclass.cleaner.settings import CleanerSettings
from webapps import WAIT


def test_a_notebook_cleaner_serves_its_page_shows_an_iframe_and_releases_the_folder_when_stopped(tmp_path):
    root = colour_folders(tmp_path / "colours", 1)
    cleaner = clean_in_notebook(root, CleanerSettings(find_dupes=False))
    try:
        page = httpx.get(cleaner.url, timeout=WAIT)
        state = httpx.get(cleaner.url + "api/state", timeout=WAIT).json()
        shown = cleaner._repr_html_()
    finally:
        cleaner.stop()
    again = clean_in_notebook(root, CleanerSettings(find_dupes=False), url_template="/proxy/{port}/")
    again.stop()

    assert page.status_code == 200 and len(state["items"]) == 3
    assert shown.startswith(f'<iframe src="http://127.0.0.1:{cleaner.port}/" width="100%" height="760"')
    assert again.url == f"/proxy/{again.port}/"
