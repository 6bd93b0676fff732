"""POST /predict through httpx: one and several files, top-k, every task, the JSON shape."""

from __future__ import annotations

import pytest

from pixclass.export.predictor import load_model
from pixclass.server.app import create_app
from pixclass.server.settings import ServerSettings
from server_helpers import asgi_client, client_for, files_field

pytestmark = pytest.mark.anyio


async def test_one_image_gets_the_models_own_prediction(predictor, images):
    name, data = "red.jpg", images["red.jpg"]
    expected = predictor.predict(data)

    async with client_for(predictor) as client:
        res = await client.post("/predict", files=files_field({name: data}))

    assert res.status_code == 200
    body = res.json()
    [pred] = body["predictions"]
    assert pred["file"] == "red.jpg"
    assert pred["label"] == expected.label and pred["index"] == expected.index
    assert pred["prob"] == pytest.approx(expected.prob, abs=1e-6)
    assert [t["label"] for t in pred["top"]] == [c for c, _ in expected.top(3)]
    assert body["model"] == {"arch": "test_efficientnet", "task": "single", "classes": 3,
                             "runtime": predictor.runtime}
    assert body["ms"] >= 0


async def test_several_images_answer_in_upload_order_under_their_names(predictor, images):
    async with client_for(predictor) as client:
        res = await client.post("/predict", files=files_field(images))

    assert res.status_code == 200
    preds = res.json()["predictions"]
    assert [p["file"] for p in preds] == list(images)
    assert [p["label"] for p in preds] == [predictor.predict(d).label for d in images.values()]


async def test_top_k_lists_that_many_classes_and_defaults_to_all_three(predictor, images):
    upload = files_field({"blue.jpg": images["blue.jpg"]})
    async with client_for(predictor) as client:
        two = (await client.post("/predict?top_k=2", files=upload)).json()["predictions"][0]["top"]
        default = (await client.post("/predict", files=upload)).json()["predictions"][0]["top"]
        many = (await client.post("/predict?top_k=50", files=upload)).json()["predictions"][0]["top"]

    assert len(two) == 2 and len(default) == 3 and len(many) == 3
    assert two == default[:2]
    assert [t["prob"] for t in default] == sorted((t["prob"] for t in default), reverse=True)


async def test_a_top_k_of_zero_is_a_json_422(predictor, images):
    async with client_for(predictor) as client:
        res = await client.post("/predict?top_k=0", files=files_field({"a.jpg": images["red.jpg"]}))

    assert res.status_code == 422
    assert res.json() == {"error": "bad parameter top_k: Input should be greater than or equal to 1",
                          "file": None}


async def test_a_multi_label_prediction_lists_the_tags_over_the_threshold(models, images):
    tags = load_model(models["multi"])
    data = images["green.jpg"]
    expected = tags.predict(data)

    async with client_for(tags) as client:
        res = await client.post("/predict", files=files_field({"g.jpg": data}))

    [pred] = res.json()["predictions"]
    assert res.status_code == 200
    assert pred["label"] == expected.label and pred["index"] == expected.index
    assert {t["label"] for t in pred["top"]} == {"red", "green", "blue"}
    assert res.json()["model"]["task"] == "multi"


async def test_a_regression_prediction_is_a_number_without_classes(models, images):
    brightness = load_model(models["regression"])
    data = images["blue.jpg"]

    async with client_for(brightness) as client:
        res = await client.post("/predict", files=files_field({"b.jpg": data}))

    [pred] = res.json()["predictions"]
    assert res.status_code == 200
    assert pred == {"file": "b.jpg", "label": pytest.approx(brightness.predict(data).label, abs=1e-6),
                    "index": None, "prob": None, "top": []}


async def test_health_info_and_the_page_answer(predictor):
    async with asgi_client(create_app(predictor, ServerSettings())) as client:
        health, info, page = await client.get("/health"), await client.get("/info"), await client.get("/")
        script = await client.get("/static/app.js")

    assert health.json() == {"status": "ok"}
    assert info.json()["classes"] == ["blue", "green", "red"] and info.json()["server"]["max_files"] == 32
    assert page.status_code == 200 and '<input id="files" type="file"' in page.text
    assert script.status_code == 200 and "/predict" in script.text


async def test_an_onnx_export_serves_the_same_predictions_as_its_bundle(models, predictor, images, tmp_path):
    from pixclass.export.onnx import export_onnx

    onnx = load_model(export_onnx(models["single"], tmp_path / "colours.onnx"))
    data = images["green.jpg"]

    async with client_for(onnx) as client:
        res = await client.post("/predict", files=files_field({"g.jpg": data}))

    [pred] = res.json()["predictions"]
    assert res.json()["model"]["runtime"] == "onnxruntime"
    assert pred["label"] == predictor.predict(data).label
    assert pred["prob"] == pytest.approx(predictor.predict(data).prob, abs=1e-5)
