"""`pixclass clean`: refuses to expose itself without a token, says what is wrong with a bad folder in
one line, and serves the page and API until Ctrl-C (exit 130)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import httpx

from cleaner_helpers import colour_folders
from webapps import WAIT


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixclass", "clean", *args], capture_output=True, text=True,
                          timeout=WAIT, check=False)


def test_clean_on_a_public_address_without_a_token_exits_1_with_one_line(tmp_path):
    root = colour_folders(tmp_path / "colours", 1)
    done = _run(str(root), "--host", "0.0.0.0")

    assert done.returncode == 1
    assert done.stderr.startswith("pixclass: refusing to serve the cleaner on 0.0.0.0 without a token")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (root / ".pixclass-clean").exists()


def test_clean_of_a_missing_folder_exits_1_naming_it(tmp_path):
    done = _run(str(tmp_path / "nowhere"))

    assert done.returncode == 1
    assert done.stderr.strip() == (f"pixclass: '{tmp_path / 'nowhere'}' is not a folder: "
                                   "pass a run folder or an image folder")


def _start_clean(root, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """`pixclass clean ROOT --port 0 --no-dupes ARGS` started; its first line of output (the URL), if
    it came within WAIT."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pixclass", "clean", str(root), "--port", "0", "--no-dupes", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(WAIT)
    return proc, first


def test_clean_serves_the_page_and_api_then_stops_on_ctrl_c_with_130(tmp_path):
    root = colour_folders(tmp_path / "colours", 1)
    proc, first = _start_clean(root, "--token", "t0k")
    try:
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)\?token=t0k", first[0] if first else "")
        assert match, f"no URL in {first!r}"
        page = httpx.get(match.group(1), timeout=WAIT)
        refused = httpx.get(match.group(1) + "api/state", timeout=WAIT)
        state = httpx.get(match.group(1) + "api/state", params={"token": "t0k"}, timeout=WAIT).json()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)

    assert first[0].startswith(f"cleaning {root.resolve()} (3 images, 3 classes) at http://127.0.0.1:")
    assert page.status_code == 200 and "pixclass clean" in page.text
    assert refused.status_code == 401
    assert [i["key"] for i in state["items"]] == ["blue/blue_0.jpg", "green/green_0.jpg", "red/red_0.jpg"]
    assert proc.returncode == 130
    assert "cleaner stopped; every decision is kept in" in err


def test_decisions_survive_a_killed_server_and_a_new_one_shows_the_same_state(tmp_path):
    from fastapi.testclient import TestClient

    from pixclass.cleaner.app import create_app
    from pixclass.cleaner.settings import CleanerSettings

    root = colour_folders(tmp_path / "colours", 2)
    proc, first = _start_clean(root)
    try:
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", first[0] if first else "")
        assert match, f"no URL in {first!r}"
        url = match.group(1)
        for body in ({"item": "blue/blue_1.png", "action": "relabel", "labels": ["green"]},
                     {"item": "red/red_0.jpg", "action": "trash"}, {"item": "green/green_0.jpg", "action": "keep"}):
            assert httpx.post(url + "api/decide", json=body, timeout=WAIT).status_code == 200
        assert httpx.post(url + "api/undo", timeout=WAIT).status_code == 200
        before = httpx.get(url + "api/state", timeout=WAIT).json()
    finally:
        proc.kill()  # no shutdown, no clean-up: as a crash
        proc.communicate(timeout=WAIT)

    with TestClient(create_app(root, CleanerSettings(find_dupes=False))) as client:
        after = client.get("/api/state").json()

    assert after["items"] == before["items"] and after["undo"] == before["undo"] == 2
    assert {i["key"]: i["status"] for i in after["items"] if i["status"]} == {"blue/blue_1.png": "relabelled",
                                                                               "red/red_0.jpg": "trashed"}
