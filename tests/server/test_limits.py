"""Limits: oversized, too many, unreadable and bomb uploads get a JSON error; the server keeps answering."""

from __future__ import annotations

import asyncio
import io
import random
import struct
import zlib

import httpx
import pytest
from PIL import Image

from imagefiles import jpeg_bytes
from server_helpers import client_for, files_field

pytestmark = pytest.mark.anyio


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares `width` × `height` pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


async def assert_still_serving(client: httpx.AsyncClient, image: bytes) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.post("/predict", files=files_field({"ok.jpg": image}))).status_code == 200


async def test_an_oversized_file_gets_413_naming_it_and_the_server_keeps_answering(predictor, images):
    big = noise_png(200)
    assert len(big) > 64 * 1024

    async with client_for(predictor, max_file_bytes=64 * 1024) as client:
        res = await client.post("/predict", files=files_field({"small.jpg": images["red.jpg"], "big.png": big}))

        assert res.status_code == 413
        assert res.json() == {"error": "'big.png' is larger than the limit of 64 KiB per file", "file": "big.png"}
        await assert_still_serving(client, images["red.jpg"])


async def test_a_request_declaring_too_many_bytes_is_refused_before_its_body_is_read(predictor, images):
    sent = []

    async def body():
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1024

    async with client_for(predictor, max_request_bytes=8 * 1024) as client:
        res = await client.post("/predict", content=body(), headers={
            "content-type": "multipart/form-data; boundary=xyz", "content-length": str(100 * 1024)})

        assert res.status_code == 413
        assert res.json() == {"error": "the request is larger than the limit of 8 KiB; send fewer or smaller "
                                       "images per request", "file": None}
        assert len(sent) <= 1  # httpx's transport may start the stream; the app read none of it
        await assert_still_serving(client, images["red.jpg"])


async def test_a_client_lying_about_its_length_is_stopped_once_past_the_limit(predictor, images):
    sent = []

    async def endless():
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
        while len(sent) < 10_000:  # 10 MB if nobody stops it
            sent.append(1)
            yield b"x" * 1024

    async with client_for(predictor, max_request_bytes=32 * 1024, max_file_bytes=1024 * 1024) as client:
        res = await client.post("/predict", content=endless(), headers={
            "content-type": "multipart/form-data; boundary=xyz", "content-length": "100"})

        assert res.status_code == 413
        assert len(sent) <= 33
        await assert_still_serving(client, images["red.jpg"])


async def test_more_files_than_allowed_get_413(predictor, images):
    five = {f"{i}.jpg": images["red.jpg"] for i in range(5)}

    async with client_for(predictor, max_files=4) as client:
        res = await client.post("/predict", files=files_field(five))

        assert res.status_code == 413
        assert res.json() == {"error": "more than 4 files in one request; send at most 4 per request", "file": None}
        await assert_still_serving(client, images["red.jpg"])


async def test_a_text_file_gets_415_naming_it(predictor, images):
    upload = {"photo.jpg": images["red.jpg"], "notes.jpg": b"just some text, not a picture\n" * 4}

    async with client_for(predictor) as client:
        res = await client.post("/predict", files=files_field(upload))

        assert res.status_code == 415
        body = res.json()
        assert body["file"] == "notes.jpg"
        assert body["error"].startswith("cannot read 'notes.jpg': not an image (")
        await assert_still_serving(client, images["red.jpg"])


async def test_a_truncated_jpeg_gets_422(predictor, images):
    async with client_for(predictor) as client:
        res = await client.post("/predict", files=files_field({"cut.jpg": jpeg_bytes(size=64)[:600]}))

        assert res.status_code == 422
        assert res.json() == {"error": "cannot read 'cut.jpg': truncated file", "file": "cut.jpg"}
        await assert_still_serving(client, images["red.jpg"])


async def test_a_decompression_bomb_gets_422_without_being_decoded(predictor, images):
    bomb = png_declaring(20_000, 20_000)
    assert len(bomb) < 200

    async with client_for(predictor) as client:
        res = await client.post("/predict", files=files_field({"bomb.png": bomb}))

        assert res.status_code == 422
        assert res.json()["file"] == "bomb.png"
        error = res.json()["error"]
        assert error.startswith("cannot read 'bomb.png': ") and "pixels" in error
        await assert_still_serving(client, images["red.jpg"])


async def test_a_body_that_is_not_multipart_gets_415_and_a_form_without_file_422(predictor):
    async with client_for(predictor) as client:
        json_body = await client.post("/predict", json={"image": "cat.jpg"})
        no_file = await client.post("/predict", files={"photo": ("a.jpg", b"123", "image/jpeg")})

    assert json_body.status_code == 415
    assert json_body.json() == {"error": "send images as multipart/form-data in the field 'file' "
                                         "(got application/json)", "file": None}
    assert no_file.status_code == 422
    assert no_file.json() == {"error": "no image: send one or more files in the multipart field 'file'",
                              "file": None}


async def test_unknown_routes_and_methods_answer_in_the_same_json_shape(predictor):
    async with client_for(predictor) as client:
        missing, wrong_method = await client.get("/nope"), await client.get("/predict")

    assert missing.status_code == 404 and missing.json() == {"error": "Not Found", "file": None}
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "Method Not Allowed", "file": None}


async def test_an_upload_that_stalls_past_the_timeout_gets_408_and_the_server_keeps_answering(predictor, images):
    async def stalling():
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
        await asyncio.sleep(60)  # cancelled when the server gives up on the request
        yield b"\r\n--xyz--\r\n"

    async with client_for(predictor, timeout_s=0.5) as client:
        res = await client.post("/predict", content=stalling(),
                                headers={"content-type": "multipart/form-data; boundary=xyz"})

        assert res.status_code == 408
        assert res.json() == {"error": "the upload did not arrive within 0.5 s", "file": None}
        await assert_still_serving(client, images["red.jpg"])
