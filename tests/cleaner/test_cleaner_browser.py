"""The cleaner's page in a real headless Chromium (Debian's, driven by Playwright) against a real server:
decisions by keyboard and click, undo, a reload that restores the page, and sort mode."""

from __future__ import annotations

import pytest

from cleaner_helpers import colour_folders, csv_rows, loose_images, running_app
from pixclass.cleaner.app import create_app
from pixclass.cleaner.settings import CleanerSettings
from webapps import chromium, needs_chromium

pytestmark = needs_chromium
T = 30_000  # ms: the bound of every wait in the page


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def _open(browser, url: str, errors: list[str]):
    """A new page on the cleaner at `url`; the page's JavaScript errors go to `errors`."""
    page = browser.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url + "/", timeout=T)
    return page


def _card(page, name: str):
    return page.locator(f".card[data-name='{name}']")


def _wait_status(page, name: str, status: str) -> None:
    page.wait_for_selector(f".card[data-name='{name}'][data-status='{status}']", timeout=T)


def test_two_relabels_a_trash_and_an_undo_survive_a_reload_on_the_page_and_on_disk(browser, tmp_path):
    root = colour_folders(tmp_path / "colours")
    red_2 = (root / "red" / "red_2.jpg").read_bytes()
    errors: list[str] = []
    with running_app(create_app(root, CleanerSettings(find_dupes=False))) as url:
        page = _open(browser, url, errors)
        page.wait_for_selector(".card", timeout=T)
        notice = page.locator("#notice").inner_text()

        _card(page, "red/red_2.jpg").click()
        page.keyboard.press("x")  # trash
        _wait_status(page, "red/red_2.jpg", "trashed")
        _card(page, "blue/blue_0.jpg").click()
        page.keyboard.press("3")  # relabel to the third class: red
        _wait_status(page, "blue/blue_0.jpg", "relabelled")
        _card(page, "green/green_1.png").click()
        page.select_option("#relabel", "blue")  # relabel by the menu
        _wait_status(page, "green/green_1.png", "relabelled")
        page.keyboard.press("u")  # undo the last: green_1 is green again
        _wait_status(page, "green/green_1.png", "undecided")

        page.reload()
        page.wait_for_selector(".card[data-name='red/red_2.jpg'][data-status='trashed']", timeout=T)
        statuses = {n: _card(page, n).get_attribute("data-status")
                    for n in ("red/red_2.jpg", "blue/blue_0.jpg", "green/green_1.png", "red/red_0.jpg")}
        labels = {n: _card(page, n).locator(".label").inner_text() for n in ("blue/blue_0.jpg", "green/green_1.png")}
        undo_depth = page.locator("#undo-depth").inner_text()

    assert errors == []
    assert "pixclass label-issues" in notice
    assert statuses == {"red/red_2.jpg": "trashed", "blue/blue_0.jpg": "relabelled",
                        "green/green_1.png": "undecided", "red/red_0.jpg": "undecided"}
    assert labels == {"blue/blue_0.jpg": "red", "green/green_1.png": "green"}
    assert undo_depth == "2"
    assert not (root / "red" / "red_2.jpg").exists()
    assert (root / ".pixclass-trash" / "red" / "red_2.jpg").read_bytes() == red_2
    assert (root / "blue" / "blue_0.jpg").is_file()  # without --apply a relabel moves nothing
    assert csv_rows(root / "cleaned.csv") == [
        "name,label", "blue/blue_0.jpg,red", "blue/blue_1.png,blue", "blue/blue_2.jpg,blue",
        "green/green_0.jpg,green", "green/green_1.png,green", "green/green_2.jpg,green",
        "red/red_0.jpg,red", "red/red_1.png,red"]


def test_sort_mode_files_loose_images_with_number_keys_and_undo_brings_one_back(browser, tmp_path):
    root = loose_images(tmp_path / "inbox", ["a.jpg", "b.jpg", "c.jpg"])
    errors: list[str] = []
    settings = CleanerSettings(sort_classes=("cat", "dog"), find_dupes=False)
    with running_app(create_app(root, settings)) as url:
        page = _open(browser, url, errors)
        page.wait_for_selector("#sorter[data-id='0']", timeout=T)
        page.keyboard.press("1")  # a.jpg → cat/
        page.wait_for_selector("#sorter[data-id='1']", timeout=T)
        page.keyboard.press("2")  # b.jpg → dog/
        page.wait_for_selector("#sorter[data-id='2']", timeout=T)
        page.keyboard.press("x")  # c.jpg → trash
        page.wait_for_selector("#sort-left:has-text('0 images left')", timeout=T)
        page.keyboard.press("u")  # c.jpg back
        page.wait_for_selector("#sorter[data-id='2']", timeout=T)
        shown = page.locator("#sort-name").inner_text()
        left = page.locator("#sort-left").inner_text()

    assert errors == []
    assert (shown, left) == ("c.jpg", "1 images left to sort")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == ["c.jpg", "cat/a.jpg", "dog/b.jpg"]
    assert csv_rows(root / "cleaned.csv") == ["name,label", "cat/a.jpg,cat", "dog/b.jpg,dog"]


def test_multi_label_tags_are_toggled_by_number_keys_and_a_refused_undo_is_shown_on_the_page(browser, tmp_path):
    import json

    from imagefiles import write_planet

    data = write_planet(tmp_path / "planet", 6)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(data / "labels.csv"), "folder": "train-jpg",
                                                 "label_delim": " "}))
    root = data / "train-jpg"
    errors: list[str] = []
    with running_app(create_app(run, CleanerSettings(find_dupes=False))) as url:
        page = _open(browser, url, errors)
        _card(page, "train_3.jpg").click()  # tags: red green
        page.keyboard.press("3")  # tags are blue, green, red: drop red
        page.wait_for_selector(".card[data-name='train_3.jpg'] .label:text-is('green')", timeout=T)
        page.keyboard.press("1")  # add blue
        page.wait_for_selector(".card[data-name='train_3.jpg'] .label:text-is('green blue')", timeout=T)
        tags = page.locator("#tags input:checked").evaluate_all("boxes => boxes.map(b => b.value)")
        _card(page, "train_0.jpg").click()
        page.keyboard.press("x")
        _wait_status(page, "train_0.jpg", "trashed")
        (root / "train_0.jpg").write_bytes(b"someone put a file here")
        page.keyboard.press("u")
        page.wait_for_selector("#error:not([hidden])", timeout=T)
        error = page.locator("#error").inner_text()
        status = _card(page, "train_0.jpg").get_attribute("data-status")

    assert errors == []
    assert tags == ["blue", "green"]
    assert error == "cannot undo: 'train_0.jpg' exists again; move or rename that file, then undo"
    assert status == "trashed"
    assert csv_rows(root / "cleaned.csv") == [
        "name,label", "train_1.jpg,green", "train_2.jpg,blue", "train_3.jpg,green blue", "train_4.jpg,green blue",
        "train_5.jpg,red blue"]


def test_every_split_is_on_one_page_and_the_split_filter_narrows_it(browser, tmp_path):
    root = tmp_path / "imagenet"
    colour_folders(root / "train", 2)
    colour_folders(root / "valid", 1)
    errors: list[str] = []
    with running_app(create_app(root, CleanerSettings(find_dupes=False))) as url:
        page = _open(browser, url, errors)
        page.wait_for_selector(".card", timeout=T)
        everything = page.locator(".card").count()
        page.select_option("#split-filter", "valid")
        page.select_option("#class-filter", "red")
        names = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.name)")

    assert errors == []
    assert everything == 9
    assert names == ["valid/red/red_0.jpg"]
