"""The upload page in a real headless Chromium (Debian's, driven by Playwright): upload, read the label."""

from __future__ import annotations

import pytest

from imagefiles import CLASS_COLOURS, save_image
from pixclass.server.app import create_app
from pixclass.server.settings import ServerSettings
from server_helpers import running_server
from webapps import chromium, needs_chromium

pytestmark = needs_chromium


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def test_an_uploaded_image_shows_the_models_label(browser, predictor, tmp_path):
    image = save_image(tmp_path / "green.jpg", CLASS_COLOURS["green"], seed=7, size=64)
    expected = predictor.predict(image)

    with running_server(create_app(predictor, ServerSettings())) as url:
        page = browser.new_page()
        page.goto(url + "/", timeout=30_000)
        page.wait_for_selector("#model:has-text('test_efficientnet')", timeout=30_000)
        page.set_input_files("#files", str(image))
        card = page.locator(".card[data-file='green.jpg']:not(.pending)")
        card.wait_for(timeout=30_000)
        label, bars = card.locator(".label").inner_text(), card.locator(".bars li").count()

    assert label == expected.label
    assert bars == 3


def test_several_images_each_get_a_card_and_an_unreadable_one_shows_its_error(browser, predictor, tmp_path):
    red = save_image(tmp_path / "red.png", CLASS_COLOURS["red"], seed=1)
    blue = save_image(tmp_path / "blue.jpg", CLASS_COLOURS["blue"], seed=2)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")

    with running_server(create_app(predictor, ServerSettings())) as url:
        page = browser.new_page()
        page.goto(url + "/", timeout=30_000)
        page.set_input_files("#files", [str(red), str(blue), str(text)])
        page.wait_for_selector("#status:has-text('3 images in')", timeout=30_000)
        labels = {f: page.locator(f".card[data-file='{f}'] .label").inner_text() for f in ("red.png", "blue.jpg")}
        error = page.locator(".card[data-file='notes.jpg'] .error").inner_text()

    assert labels == {"red.png": predictor.predict(red).label, "blue.jpg": predictor.predict(blue).label}
    assert error.startswith("cannot read 'notes.jpg': not an image (")


def test_a_server_with_a_key_asks_for_it_and_then_predicts(browser, predictor, tmp_path):
    image = save_image(tmp_path / "red.jpg", CLASS_COLOURS["red"], seed=3)

    with running_server(create_app(predictor, ServerSettings(api_key="k3y"))) as url:
        page = browser.new_page()
        page.goto(url + "/", timeout=30_000)
        page.wait_for_selector("#key-form:not([hidden])", timeout=30_000)
        page.fill("#key", "k3y")
        page.click("#key-form button")
        page.wait_for_selector("#model:has-text('test_efficientnet')", timeout=30_000)
        page.set_input_files("#files", str(image))
        label = page.locator(".card[data-file='red.jpg']:not(.pending) .label")
        label.wait_for(timeout=30_000)

        assert label.inner_text() == predictor.predict(image).label
