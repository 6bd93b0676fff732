"""Safe image reading: any file becomes an upright RGB image or a one-line `ImageReadError`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pixclass.data.images
from imagefiles import noise_image
from pixclass.data.images import describe_content, open_image
from pixclass.errors import ImageReadError, PixclassError


def test_exif_orientation_is_applied(tmp_path):
    # A 60×40 landscape image whose top-left corner is red, stored with "rotate 90° CW" (6).
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "rotated.jpg", exif=exif, quality=95)

    img = open_image(tmp_path / "rotated.jpg")

    assert img.size == (40, 60)  # shown upright: portrait
    r, g, b = img.getpixel((35, 4))  # the red corner is now at the top right
    assert r > 200 and g < 60 and b < 60


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    img.save(tmp_path / "palette.png", transparency=0)

    out = open_image(tmp_path / "palette.png")

    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 0, 0)
    assert out.getpixel((5, 5)) == (255, 255, 255)  # transparent → white, not black


def test_grey_with_alpha_becomes_rgb(tmp_path):
    img = Image.new("LA", (8, 8), (100, 255))
    img.putpixel((1, 1), (0, 0))
    img.save(tmp_path / "la.png")

    out = open_image(tmp_path / "la.png")

    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (100, 100, 100)
    assert out.getpixel((1, 1)) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    noise_image((200, 40, 40), 0).convert("CMYK").save(tmp_path / "cmyk.jpg")

    out = open_image(tmp_path / "cmyk.jpg")

    assert out.mode == "RGB"
    r, g, b = np.asarray(out).reshape(-1, 3).mean(0)
    assert r > 150 and g < 100 and b < 100


def test_16_bit_grey_is_scaled_to_the_full_8_bit_range(tmp_path):
    arr = np.linspace(1000, 60000, 64 * 8, dtype=np.uint16).reshape(8, 64)
    Image.fromarray(arr).save(tmp_path / "deep.png")

    out = open_image(tmp_path / "deep.png")

    assert out.mode == "RGB"
    values = np.asarray(out)[..., 0]
    assert values.min() == 0 and values.max() == 255  # not clipped to white


def test_jpeg_draft_decodes_smaller_but_not_below_min_size(tmp_path):
    noise_image((90, 90, 90), 0, size=400).crop((0, 0, 400, 300)).save(tmp_path / "big.jpg")

    img = open_image(tmp_path / "big.jpg", min_size=64)

    assert min(img.size) >= 64
    assert img.size[0] < 400  # decoded at a reduced DCT scale
    assert img.size[0] / img.size[1] == pytest.approx(4 / 3, rel=0.02)


def test_min_size_never_upscales_or_shrinks_small_images(tmp_path):
    noise_image((90, 90, 90), 0, size=40).save(tmp_path / "small.jpg")

    assert open_image(tmp_path / "small.jpg", min_size=64).size == (40, 40)


def test_too_many_pixels_is_refused_as_a_possible_bomb(tmp_path, monkeypatch):
    noise_image((1, 2, 3), 0, size=40).save(tmp_path / "bomb.png")
    monkeypatch.setattr(pixclass.data.images, "MAX_PIXELS", 1000)

    with pytest.raises(ImageReadError, match="40×40 pixels is more than the limit of 1,000"):
        open_image(tmp_path / "bomb.png")


@pytest.mark.parametrize(
    "kind, reason",
    [("empty", r"not an image \(empty file\)"),
     ("html", r"not an image \(HTML page, \d+ B\)"),
     ("truncated", "truncated file")],
)
def test_unreadable_files_give_one_line_naming_file_reason_and_verify(broken_files, kind, reason):
    path = broken_files[kind]

    with pytest.raises(ImageReadError, match=reason) as err:
        open_image(path)

    message = str(err.value)
    assert "\n" not in message
    assert f"cannot read '{path}'" in message
    assert f"Run 'pixclass verify {path.parent}'" in message
    assert isinstance(err.value, PixclassError) and err.value.path == str(path)


def test_missing_file_is_an_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        open_image(tmp_path / "gone.jpg")


def test_describe_content_guesses_what_a_non_image_is(tmp_path):
    (tmp_path / "a.jpg").write_text('{"error": "rate limited"}')

    assert describe_content(tmp_path / "a.jpg") == "JSON, 25 B"
