"""Safe image reading: any file becomes an upright RGB image or a one-line `ImageReadError`."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import pixclass.data.images
from imagefiles import noise_image
from pixclass.data.images import IMAGE_FORMATS, MAX_PIXELS, describe_content, is_image_file, open_image
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


# --- sources other than paths --------------------------------------------------------------------


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, io.BytesIO], ids=lambda w: w.__name__)
def test_bytes_and_file_objects_read_as_the_same_picture_as_the_file(tmp_path, wrap):
    noise_image((30, 120, 200), 0).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()

    img = open_image(wrap(data))

    assert img.mode == "RGB" and np.array_equal(np.asarray(img), np.asarray(open_image(tmp_path / "a.png")))


def test_an_open_binary_file_reads_like_its_path(tmp_path):
    noise_image((30, 120, 200), 0).save(tmp_path / "a.png")
    with open(tmp_path / "a.png", "rb") as fh:
        img = open_image(fh)
    assert np.array_equal(np.asarray(img), np.asarray(open_image(tmp_path / "a.png")))


def test_a_file_object_in_text_mode_is_a_type_error(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with open(tmp_path / "a.txt") as fh, pytest.raises(TypeError, match=r"open it in binary mode \('rb'\)"):
        open_image(fh)


def test_exif_orientation_is_applied_to_bytes():
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (60, 40), (0, 0, 255)).save(buf, format="JPEG", exif=exif)

    assert open_image(buf.getvalue()).size == (40, 60)


def test_jpeg_draft_decoding_applies_to_bytes():
    buf = io.BytesIO()
    noise_image((90, 90, 90), 0, size=400).save(buf, format="JPEG")

    assert open_image(buf.getvalue(), min_size=64).size == (100, 100)  # the 1/4 DCT scale


def test_too_many_pixels_in_bytes_is_refused_with_the_upload_s_name(monkeypatch):
    monkeypatch.setattr(pixclass.data.images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageReadError) as err:
        open_image(png_bytes(Image.new("RGB", (40, 40))), name="cat.png")
    assert str(err.value) == ("cannot read 'cat.png': 40×40 pixels is more than the limit of 1,000. Send the bytes "
                              "of a whole image file (BMP, GIF, JPEG, PNG, PPM, TIFF or WEBP).")


def test_bytes_that_are_not_an_image_name_the_source_and_give_an_upload_s_next_step():
    with pytest.raises(ImageReadError) as err:
        open_image(b"<!doctype html><html>nope</html>")
    assert str(err.value) == ("cannot read '<bytes>': not an image (HTML page, 32 B). Send the bytes of a whole "
                              "image file (BMP, GIF, JPEG, PNG, PPM, TIFF or WEBP).")
    assert err.value.path == "<bytes>" and "verify" not in str(err.value)


def test_truncated_bytes_are_reported_as_truncated():
    buf = io.BytesIO()
    noise_image((90, 90, 90), 0, size=64).save(buf, format="JPEG")
    with pytest.raises(ImageReadError, match=r"^cannot read 'up\.jpg': truncated file\. Send"):
        open_image(buf.getvalue()[:600], name="up.jpg")


def test_a_format_outside_the_policy_is_not_an_image_even_if_pillow_knows_it(tmp_path):
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "icon.png", format="ICO")
    with pytest.raises(ImageReadError, match=r"not an image \(unknown data, \d+ B\)"):
        open_image(tmp_path / "icon.png")


def test_a_pil_image_is_read_upright_in_rgb_and_never_changed():
    img = Image.new("RGBA", (60, 40), (255, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 255, 255))
    exif = img.getexif()
    exif[0x0112] = 6
    before = (img.mode, img.size, img.tobytes(), dict(img.getexif()))

    out = open_image(img)

    assert out is not img and out.mode == "RGB" and out.size == (40, 60)
    assert out.getpixel((39, 0)) == (0, 0, 255) and out.getpixel((0, 0)) == (255, 255, 255)
    assert (img.mode, img.size, img.tobytes(), dict(img.getexif())) == before


def test_an_rgb_pil_image_comes_back_as_a_copy():
    img = Image.new("RGB", (4, 4), (1, 2, 3))
    out = open_image(img)
    out.putpixel((0, 0), (9, 9, 9))
    assert out is not img and img.getpixel((0, 0)) == (1, 2, 3)


def test_a_pil_image_over_the_pixel_limit_is_refused(monkeypatch):
    monkeypatch.setattr(pixclass.data.images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageReadError, match=r"^cannot read '<image>': 40×40 pixels is more than the limit"):
        open_image(Image.new("RGB", (40, 40)))


@pytest.mark.parametrize(
    "array, pixel",
    [(np.full((3, 5), 7, np.uint8), (7, 7, 7)),
     (np.full((3, 5, 1), 7, np.uint8), (7, 7, 7)),
     (np.full((3, 5, 3), (1, 2, 3), np.uint8), (1, 2, 3)),
     (np.full((3, 5, 4), (1, 2, 3, 0), np.uint8), (255, 255, 255)),  # transparent → white
     (np.full((3, 5, 4), (1, 2, 3, 255), np.uint8), (1, 2, 3)),
     (np.ones((3, 5), bool), (255, 255, 255)),
     (np.full((3, 5, 3), (0.0, 0.5, 1.0), np.float32), (0, 128, 255)),
     (np.full((3, 5), 0.25, np.float64), (64, 64, 64)),
     (np.full((3, 5, 3), (256, 512, 65535), np.uint16), (1, 2, 255))],  # 16-bit RGB: the high byte
    ids=["grey", "grey1", "rgb", "rgba-clear", "rgba-opaque", "bool", "float-rgb", "float-grey", "uint16-rgb"],
)
def test_numpy_arrays_become_rgb_pictures(array, pixel):
    img = open_image(array)
    assert img.mode == "RGB" and img.size == (5, 3) and img.getpixel((4, 2)) == pixel


def test_a_16_bit_grey_array_reads_like_the_16_bit_png_made_from_it():
    arr = np.linspace(1000, 50000, 64 * 8).reshape(8, 64).astype(np.uint16)
    assert np.array_equal(np.asarray(open_image(arr)), np.asarray(open_image(png_bytes(Image.fromarray(arr)))))


def test_an_array_is_never_changed_and_never_shared():
    arr = np.full((3, 5, 3), 9, np.uint8)
    img = open_image(arr)
    img.putpixel((0, 0), (0, 0, 0))
    arr[1, 1] = 1
    assert (arr == 9).sum() == 3 * 5 * 3 - 3 and img.getpixel((1, 1)) == (9, 9, 9)


@pytest.mark.parametrize(
    "array, reason",
    [(np.zeros((3, 5), np.int64), "an array of dtype int64 is not an image"),
     (np.zeros((3, 5, 2), np.uint8), r"an array of shape \(3, 5, 2\) is not an image"),
     (np.zeros((3,), np.uint8), r"an array of shape \(3,\) is not an image"),
     (np.zeros((0, 5), np.uint8), r"an array of shape \(0, 5\) is not an image"),
     (np.full((3, 5), 1.5), r"a float array must hold values in 0\.\.1, got 1\.5\.\.1\.5"),
     (np.full((3, 5), np.nan), r"a float array must hold values in 0\.\.1, got nan\.\.nan")],
    ids=["int64", "two-channels", "1-d", "empty", "float-range", "nan"],
)
def test_an_array_that_is_no_image_says_what_it_got_and_what_is_accepted(array, reason):
    with pytest.raises(ImageReadError, match=f"^cannot read 'frame 3': {reason}. Pass an array of shape "
                                             r"\(H, W\), \(H, W, 1\), \(H, W, 3\) or \(H, W, 4\) with dtype uint8, "
                                             r"uint16, bool, or float with values in 0\.\.1\.$"):
        open_image(array, name="frame 3")


def test_an_array_error_without_a_name_calls_it_array():
    with pytest.raises(ImageReadError, match=r"^cannot read '<array>': an array of dtype complex128"):
        open_image(np.zeros((2, 2), complex))


def test_an_unknown_source_type_is_a_type_error():
    with pytest.raises(TypeError, match="open_image: cannot read a int; pass a path, bytes"):
        open_image(42)


# --- the colour policy -------------------------------------------------------------------------


def test_a_flat_16_bit_image_keeps_its_level_instead_of_turning_black(tmp_path):
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(tmp_path / "flat.png")
    assert open_image(tmp_path / "flat.png").getpixel((0, 0)) == (156, 156, 156)  # 40000 / 257, rounded


def test_a_float_tiff_is_scaled_by_its_actual_range(tmp_path):
    Image.fromarray(np.array([[-2.0, 0.0, 2.0]], np.float32)).save(tmp_path / "f.tif")
    out = open_image(tmp_path / "f.tif")
    assert [out.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_an_rgb_png_s_transparent_colour_is_composited_on_white(tmp_path):
    img = Image.new("RGB", (2, 1), (10, 20, 30))
    img.putpixel((1, 0), (200, 0, 0))
    img.save(tmp_path / "key.png", transparency=(10, 20, 30))
    out = open_image(tmp_path / "key.png")
    assert [out.getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (200, 0, 0)]


# --- the policy's constants and errors -----------------------------------------------------------


@pytest.mark.parametrize("name", ["a.jpg", "a.JPEG", "a.jpe", "a.jfif", "a.png", "a.gif", "a.webp", "a.bmp",
                                  "a.tif", "a.TIFF", "a.ppm", "a.pgm"])
def test_every_extension_pillow_decodes_for_us_is_an_image_file(name):
    assert is_image_file(name)


@pytest.mark.parametrize("name", [".a.jpg", "a.txt", "a.svg", "a.heic", "a", "a.jpg.part"])
def test_hidden_files_and_other_extensions_are_not_image_files(name):
    assert not is_image_file(name)


def test_every_listed_extension_is_read_by_its_listed_decoder(tmp_path):
    for ext, decoder in IMAGE_FORMATS.items():
        Image.new("RGB", (4, 4), (50, 100, 150)).save(tmp_path / f"a{ext}", format=decoder)
        assert open_image(tmp_path / f"a{ext}").size == (4, 4)
        with Image.open(tmp_path / f"a{ext}") as im:
            assert im.format == decoder


def test_max_pixels_is_pillow_s_warning_threshold():
    assert MAX_PIXELS == 89_478_485 == Image.MAX_IMAGE_PIXELS


def test_image_read_error_keeps_the_verify_advice_for_files_and_takes_a_hint_for_others():
    assert str(ImageReadError("data/cats/a.jpg", "truncated file")) == (
        "cannot read 'data/cats/a.jpg': truncated file. Run 'pixclass verify data/cats' to quarantine "
        "unreadable files.")
    assert str(ImageReadError("<bytes>", "empty file", hint="Upload an image.")) == (
        "cannot read '<bytes>': empty file. Upload an image.")
    assert str(ImageReadError("<bytes>", "empty file", hint="")) == "cannot read '<bytes>': empty file."


def test_image_read_error_survives_pickling():
    err = pickle.loads(pickle.dumps(ImageReadError("up.jpg", "truncated file", hint="Try again.")))
    assert (err.path, err.reason, err.hint, str(err)) == (
        "up.jpg", "truncated file", "Try again.", "cannot read 'up.jpg': truncated file. Try again.")


def test_importing_the_image_module_does_not_import_torch():
    code = "import sys, pixclass.data.images; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
