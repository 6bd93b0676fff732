"""The API key: required on /predict, /info and /metrics when set; /health, /ready and the page stay open;
serving beyond loopback without a key is refused."""

from __future__ import annotations

import pytest

from pixclass.errors import PixclassError
from pixclass.server.settings import check_exposure, is_loopback
from server_helpers import client_for, files_field, run_cli

KEY = "s3cret-key"


@pytest.mark.anyio
async def test_without_the_key_protected_routes_answer_401_and_open_ones_200(predictor, images):
    async with client_for(predictor, api_key=KEY) as client:
        predict = await client.post("/predict", files=files_field({"a.jpg": images["red.jpg"]}))
        info, metrics = await client.get("/info"), await client.get("/metrics")
        wrong = await client.get("/info", headers={"X-API-Key": "s3cret-kez"})
        health, ready, page = await client.get("/health"), await client.get("/ready"), await client.get("/")

    for res in (predict, info, metrics, wrong):
        assert res.status_code == 401
        assert res.headers["www-authenticate"] == "Bearer"
        assert res.json() == {"error": "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                                       "'X-API-Key: KEY'", "file": None}
    assert [health.status_code, ready.status_code, page.status_code] == [200, 200, 200]


@pytest.mark.anyio
@pytest.mark.parametrize("header", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}])
async def test_with_the_key_in_either_header_protected_routes_answer_200(predictor, images, header):
    async with client_for(predictor, api_key=KEY) as client:
        predict = await client.post("/predict", files=files_field({"a.jpg": images["red.jpg"]}), headers=header)
        info, metrics = await client.get("/info", headers=header), await client.get("/metrics", headers=header)

    assert [predict.status_code, info.status_code, metrics.status_code] == [200, 200, 200]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_key(host):
    assert is_loopback(host)
    check_exposure(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_other_addresses_need_a_key(host):
    assert not is_loopback(host)
    with pytest.raises(PixclassError, match=f"refusing to serve on {host} without an API key"):
        check_exposure(host, None)
    check_exposure(host, KEY)


def test_the_cli_refuses_to_serve_on_all_interfaces_without_a_key(models):
    result = run_cli("serve", str(models["single"]), "--host", "0.0.0.0", "--port", "0", timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pixclass: refusing to serve on 0.0.0.0 without an API key: anyone who can reach it could use the model. "
        "Pass --api-key KEY (or set PIXCLASS_API_KEY), or bind to 127.0.0.1"]
