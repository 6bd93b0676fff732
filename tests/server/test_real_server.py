"""A real uvicorn server on 127.0.0.1: concurrent clients, over-limit uploads, and the `pixclass serve` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from imagefiles import jpeg_bytes
from pixclass.server.app import create_app
from pixclass.server.settings import ServerSettings
from server_helpers import running_server
from webapps import WAIT


@pytest.mark.parametrize("batching", [{"micro_batching": True, "max_batch": 4}, {"micro_batching": False}],
                         ids=["micro-batching", "direct"])
def test_concurrent_requests_each_get_their_own_images_predictions(predictor, batching):
    uploads = [jpeg_bytes((i * 20 % 256, 255 - i * 9 % 256, i * 37 % 256), size=40, seed=i) for i in range(24)]
    expected = [predictor.predict(d) for d in uploads]

    def post(url: str, i: int) -> dict:
        res = httpx.post(f"{url}/predict", files={"file": (f"{i}.jpg", uploads[i])}, timeout=WAIT)
        assert res.status_code == 200
        return res.json()["predictions"][0]

    with running_server(create_app(predictor, ServerSettings(**batching))) as url:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda i: post(url, i), range(len(uploads))))

    for i, pred in enumerate(got):
        assert pred["file"] == f"{i}.jpg"
        assert pred["label"] == expected[i].label
        assert all(abs(t["prob"] - expected[i].probs[t["label"]]) < 1e-6 for t in pred["top"])


def test_an_oversized_upload_gets_413_over_the_wire_and_the_server_keeps_answering(predictor, images):
    with running_server(create_app(predictor, ServerSettings(max_request_bytes=16 * 1024))) as url:
        too_big = httpx.post(f"{url}/predict", files={"file": ("big.bin", os.urandom(64 * 1024))}, timeout=WAIT)
        health = httpx.get(f"{url}/health", timeout=WAIT)
        ok = httpx.post(f"{url}/predict", files={"file": ("red.jpg", images["red.jpg"])}, timeout=WAIT)

    assert too_big.status_code == 413 and too_big.json()["error"].startswith("the request is larger than")
    assert health.status_code == 200 and ok.status_code == 200


@pytest.mark.slow  # a fresh process imports torch and converts the model to ONNX: 5-25 s
def test_the_cli_serves_a_model_on_a_free_port_and_ctrl_c_stops_it(models, images, predictor):
    proc = subprocess.Popen([sys.executable, "-m", "pixclass", "serve", str(models["single"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()  # "serving M (arch, 3 classes, runtime) at http://127.0.0.1:PORT/ ..."
        assert line.startswith(f"serving {models['single']} (test_efficientnet, 3 classes, "), line
        url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        deadline = time.monotonic() + WAIT
        while httpx.get(f"{url}/ready", timeout=WAIT).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        res = httpx.post(f"{url}/predict", files={"file": ("red.jpg", images["red.jpg"])}, timeout=WAIT)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)

    assert res.json()["predictions"][0]["label"] == predictor.predict(images["red.jpg"]).label
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "pixclass: server stopped"


def test_the_cli_names_a_missing_model_in_one_line(tmp_path):
    from server_helpers import run_cli

    result = run_cli("serve", str(tmp_path / "gone.pixclass"), "--port", "0")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"pixclass: model file '{tmp_path / 'gone.pixclass'}' does not exist"]
