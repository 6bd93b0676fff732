"""Every path a request names stays inside the dataset root: `..`, absolute, encoded and symlinked
escapes are refused with a one-line JSON error; off loopback the cleaner needs a token, and with
one every API call must carry it."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from cleaner_helpers import colour_folders
from pixclass.cleaner.app import create_app
from pixclass.cleaner.settings import CleanerSettings, check_exposure
from pixclass.errors import PixclassError

QUIET = CleanerSettings(find_dupes=False)


@pytest.fixture
def root(tmp_path):
    return colour_folders(tmp_path / "colours")


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"not yours")
    return path


@pytest.mark.parametrize("path", ["../secret.jpg", "blue/../../secret.jpg", "/etc/passwd", "blue\\..\\..\\secret.jpg",
                                  "", "C:/Windows/win.ini"])
def test_an_image_path_leading_outside_the_root_is_refused_with_400(root, secret, path):
    with TestClient(create_app(root, QUIET)) as client:
        answer = client.get("/api/image", params={"path": path})

    assert answer.status_code == 400
    assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"]
    assert answer.json()["error"].startswith("bad path")


def test_a_percent_encoded_escape_is_decoded_then_refused(root, secret):
    with TestClient(create_app(root, QUIET)) as client:
        answer = client.get("/api/image?path=%2e%2e%2fsecret.jpg")
        double = client.get("/api/image?path=blue%2F%2E%2E%2F%2E%2E%2Fsecret.jpg")

    assert (answer.status_code, double.status_code) == (400, 400)
    assert answer.json() == {
        "error": "bad path '../secret.jpg': '..' is refused; give a path inside the dataset folder"}


def test_a_link_inside_the_root_to_a_file_outside_is_neither_listed_nor_served(root, secret):
    os.symlink(secret, root / "blue" / "escape.jpg")
    os.symlink(secret.parent, root / "outside")
    with TestClient(create_app(root, QUIET)) as client:
        names = [i["key"] for i in client.get("/api/state").json()["items"]]
        served = client.get("/api/image", params={"path": "blue/escape.jpg"})
        through_folder = client.get("/api/image", params={"path": "outside/secret.jpg"})
        decided = client.post("/api/decide", json={"item": "blue/escape.jpg", "action": "trash"})
        notes = client.get("/api/state").json()["notes"]

    assert "blue/escape.jpg" not in names and not any(n.startswith("outside/") for n in names)
    assert (served.status_code, through_folder.status_code, decided.status_code) == (400, 400, 400)
    assert served.json()["error"] == "bad path 'blue/escape.jpg': it leads outside the dataset folder through a link"
    assert notes == ["2 images reached through links leading outside the folder are not shown"]
    assert secret.read_bytes() == b"not yours" and os.path.islink(root / "blue" / "escape.jpg")


def test_decisions_naming_a_path_outside_the_root_are_refused_and_move_nothing(root, secret):
    with TestClient(create_app(root, QUIET)) as client:
        answers = [client.post("/api/decide", json={"item": p, "action": "trash"})
                   for p in ("../secret.jpg", str(secret), "%2e%2e/secret.jpg")]

    assert [a.status_code for a in answers] == [400, 400, 404]  # the last is a (strange) name inside the root
    assert secret.read_bytes() == b"not yours"
    assert not (root / ".pixclass-trash").exists()


def test_unknown_ids_and_paths_inside_the_root_are_404(root):
    with TestClient(create_app(root, QUIET)) as client:
        by_id = client.get("/api/image", params={"id": 999})
        by_path = client.get("/api/image", params={"path": "blue/nothing.jpg"})
        hidden = client.get("/api/image", params={"path": ".pixclass-clean/decisions.jsonl"})

    assert (by_id.status_code, by_path.status_code, hidden.status_code) == (404, 404, 404)
    assert by_id.json() == {"error": "no item 999: ids go from 0 to 8"}


def test_an_image_is_served_by_id_or_by_path_with_its_bytes(root):
    with TestClient(create_app(root, QUIET)) as client:
        by_id = client.get("/api/image", params={"id": 0})
        by_path = client.get("/api/image", params={"path": "blue/blue_0.jpg"})

    assert by_id.content == by_path.content == (root / "blue" / "blue_0.jpg").read_bytes()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", "::"])
def test_a_cleaner_bound_beyond_loopback_without_a_token_refuses_to_start(host):
    with pytest.raises(PixclassError, match=f"refusing to serve the cleaner on {host} without a token"):
        check_exposure(host, None)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_a_cleaner_on_loopback_needs_no_token(host):
    check_exposure(host, None)


def test_with_a_token_every_api_call_needs_it_by_header_or_query(root):
    with TestClient(create_app(root, CleanerSettings(token="s3cret", find_dupes=False))) as client:
        page = client.get("/")
        bare = [client.get("/api/state"), client.get("/api/image", params={"id": 0}), client.get("/api/dupes"),
                client.post("/api/decide", json={"item": 0, "action": "trash"}), client.post("/api/undo")]
        wrong = client.get("/api/state", headers={"X-Token": "guess"})
        header = client.get("/api/state", headers={"X-Token": "s3cret"})
        bearer = client.get("/api/state", headers={"Authorization": "Bearer s3cret"})
        query = client.get("/api/image", params={"id": 0, "token": "s3cret"})

    assert page.status_code == 200  # the page holds no data: it asks for the token
    assert [a.status_code for a in bare] == [401] * 5 and wrong.status_code == 401
    assert bare[0].json()["error"].startswith("missing or wrong token")
    assert (header.status_code, bearer.status_code, query.status_code) == (200, 200, 200)
    assert (root / "blue" / "blue_0.jpg").is_file()  # the refused trash moved nothing


def test_a_change_posted_from_another_sites_page_is_refused_with_403(root):
    with TestClient(create_app(root, QUIET)) as client:
        foreign = client.post("/api/decide", json={"item": 0, "action": "trash"}, headers={"Origin": "http://evil.example"})
        undo = client.post("/api/undo", headers={"Origin": "http://evil.example"})
        own = client.post("/api/decide", json={"item": 0, "action": "keep"}, headers={"Origin": "http://testserver"})

    assert (foreign.status_code, undo.status_code, own.status_code) == (403, 403, 200)
    assert foreign.json() == {"error": "refused a change sent from another site (http://evil.example): "
                                       "use the cleaner's own page"}
    assert (root / "blue" / "blue_0.jpg").is_file()
