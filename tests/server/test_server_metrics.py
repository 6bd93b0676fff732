"""/metrics: Prometheus text with request counts, the latency histogram, errors and batch sizes."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server_helpers import client_for, files_field

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_requests_errors_latency_and_batch_sizes(predictor, images):
    async with client_for(predictor) as client:
        await client.post("/predict", files=files_field(images))
        await client.post("/predict", files=files_field({"red.jpg": images["red.jpg"]}))
        await client.post("/predict", files=files_field({"notes.txt": b"not an image at all"}))
        res = await client.get("/metrics")

    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    got = samples(res.text)
    assert got[("pixclass_requests_total", (("route", "/predict"), ("status", "200")))] == 2
    assert got[("pixclass_requests_total", (("route", "/predict"), ("status", "415")))] == 1
    assert got[("pixclass_errors_total", (("kind", "not_an_image"),))] == 1
    assert got[("pixclass_request_duration_seconds_count", (("route", "/predict"),))] == 3
    assert got[("pixclass_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "/predict")))] == 3
    assert got[("pixclass_images_predicted_total", ())] == 4
    assert got[("pixclass_batch_size_sum", ())] == 4  # 3 + 1 images, however they were batched
    assert got[("pixclass_model_ready", ())] == 1


async def test_two_apps_keep_separate_metrics(predictor, images):
    async with client_for(predictor) as first, client_for(predictor) as second:
        await first.post("/predict", files=files_field({"red.jpg": images["red.jpg"]}))
        one, other = samples((await first.get("/metrics")).text), samples((await second.get("/metrics")).text)

    key = ("pixclass_requests_total", (("route", "/predict"), ("status", "200")))
    assert one[key] == 1 and key not in other


async def test_unknown_paths_are_counted_under_one_label(predictor):
    async with client_for(predictor) as client:
        for path in ("/a", "/b", "/wp-admin"):
            await client.get(path)
        got = samples((await client.get("/metrics")).text)

    assert got[("pixclass_requests_total", (("route", "other"), ("status", "404")))] == 3
