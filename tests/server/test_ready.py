"""/ready: 503 while the model loads (or after it failed to load), 200 once it is loaded and warm."""

from __future__ import annotations

import threading

import pytest

from pixclass.errors import PixclassError
from pixclass.server.app import create_app
from pixclass.server.settings import ServerSettings
from server_helpers import asgi_client, files_field, wait_ready

pytestmark = pytest.mark.anyio


async def test_ready_is_503_until_the_model_has_loaded_then_200(predictor, images):
    release = threading.Event()

    def slow_load():
        assert release.wait(60), "the test never released the model"
        return predictor

    async with asgi_client(create_app(slow_load, ServerSettings()), ready=False) as client:
        loading, health = await client.get("/ready"), await client.get("/health")
        predict = await client.post("/predict", files=files_field({"a.jpg": images["red.jpg"]}))
        release.set()
        await wait_ready(client)
        ready = await client.get("/ready")

    assert loading.status_code == 503 and loading.headers["retry-after"] == "1"
    assert loading.json() == {"error": "not ready: the model is still loading", "file": None}
    assert health.status_code == 200
    assert predict.status_code == 503
    assert ready.json() == {"status": "ready"}


async def test_a_model_that_fails_to_load_keeps_ready_503_with_the_reason(images):
    def broken_load():
        raise PixclassError("model file 'gone.pixclass' does not exist")

    async with asgi_client(create_app(broken_load, ServerSettings()), ready=False) as client:
        for _ in range(500):  # the loading thread fails at once; bounded wait for it
            res = await client.get("/ready")
            if "failed" in res.json()["error"]:
                break
        health = await client.get("/health")

    assert res.status_code == 503
    assert res.json() == {"error": "not ready: the model failed to load: model file 'gone.pixclass' does not exist",
                          "file": None}
    assert health.status_code == 200
