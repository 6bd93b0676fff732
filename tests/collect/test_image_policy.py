"""One image policy: what `verify --fix` and `download --size/--pad` write reads, through `open_image`,
as the picture training reads from the original, and all of them agree on which files are images
and how many pixels are too many (`pixclass.data.images`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collect_helpers import Reply, blank_image, make_image
from pixclass.collect import download_images, verify_images
from pixclass.collect.imaging import EXTENSIONS, ImageProblem, prepare
from pixclass.collect.verify import classify, find_candidates
from pixclass.data.images import IMAGE_EXTENSIONS, MAX_PIXELS, open_image
from pixclass.data.sources import image_files
from pixclass.errors import ImageReadError

pytestmark = pytest.mark.timeout(120)

# Tolerances (max, mean absolute difference per channel) of the pictures read back. Lossless
# outputs (PNG, GIF) must be exact. Measured here: verify --fix's JPEG (quality 95, 4:4:4) differs
# by at most 6 levels, mean 0.7; download --pad's JPEG (quality 90, 4:2:0, next to black padding)
# by up to 55 at the edge, mean 3.0. A wrong colour policy or turn costs a mean of tens of levels.
EXACT, FIX_JPEG, PAD_JPEG = (0, 0.0), (10, 1.5), (255, 4.5)


def encode(im: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def noise(mode: str, size=(40, 30), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(Image.new(mode, (1, 1)).getbands())
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr).convert(mode)


def smooth(size=(40, 24)) -> Image.Image:
    """A photo-like RGB picture (gradients), what JPEG is made for; noise would measure JPEG itself."""
    x, y = np.meshgrid(np.linspace(0, 1, size[0]), np.linspace(0, 1, size[1]))
    arr = np.stack([200 * x + 30, 180 * y + 40, 120 * (1 - x) * y + 60], axis=-1)
    return Image.fromarray(arr.round().astype(np.uint8))


def grey_16_bit_png() -> bytes:
    arr = np.linspace(1000, 50000, 40 * 30).reshape(30, 40).astype(np.uint16)  # not the full 16-bit range
    return encode(Image.fromarray(arr), "PNG")


def rgba_png() -> bytes:
    im = noise("RGBA")
    alpha = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))  # transparent to opaque
    im.putalpha(Image.fromarray(alpha))
    return encode(im, "PNG")


def palette_gif_with_transparency() -> bytes:
    im = noise("RGB").quantize(64)
    arr = np.asarray(im).copy()
    arr[:10, :10] = 0  # colour 0 is the transparent one
    out = Image.frombytes("P", im.size, arr.tobytes())
    out.putpalette(im.getpalette())
    return encode(out, "GIF", transparency=0)


def cmyk_jpeg() -> bytes:
    return encode(smooth().convert("CMYK"), "JPEG", quality=95)


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im = smooth()
    im.paste((255, 0, 0), (0, 0, 8, 8))  # a red top-left corner: a wrong turn moves it
    return encode(im, "JPEG", quality=95, exif=exif.tobytes())


def grey_alpha_png() -> bytes:
    im = noise("LA", seed=3)
    return encode(im, "PNG")


AWKWARD = {  # file -> bytes; the JPEGs can only be rewritten with loss
    "grey16.png": grey_16_bit_png(),
    "rgba.png": rgba_png(),
    "palette.gif": palette_gif_with_transparency(),
    "grey_alpha.png": grey_alpha_png(),
    "cmyk.jpg": cmyk_jpeg(),
    "rotated.jpg": rotated_jpeg(),
}
LOSSLESS = sorted(n for n in AWKWARD if not n.endswith(".jpg"))


def pixels(source) -> np.ndarray:
    return np.asarray(open_image(source), dtype=np.int16)


def assert_same_picture(got: np.ndarray, want: np.ndarray, tolerance: tuple[int, float]) -> None:
    assert got.shape == want.shape
    diff = np.abs(got - want)
    assert diff.max() <= tolerance[0] and diff.mean() <= tolerance[1]


@pytest.fixture
def awkward(tmp_path) -> Path:
    root = tmp_path / "data"
    (root / "cls").mkdir(parents=True)
    for name, data in AWKWARD.items():
        (root / "cls" / name).write_bytes(data)
    return root


def test_every_awkward_original_is_something_verify_fixes(awkward):
    report = verify_images(awkward, quarantine=False, progress=False, workers=1)
    assert {c.file: c.problem for c in report.checks} == {
        "cls/cmyk.jpg": "odd_mode", "cls/grey16.png": "odd_mode", "cls/grey_alpha.png": "odd_mode",
        "cls/palette.gif": "odd_mode", "cls/rgba.png": "odd_mode", "cls/rotated.jpg": "rotated"}


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_a_file_fixed_by_verify_reads_as_the_picture_training_read_from_its_original(awkward, name):
    original = pixels(awkward / "cls" / name)

    verify_images(awkward, fix=True, progress=False, workers=1)

    assert (awkward / ".quarantine" / "cls" / name).read_bytes() == AWKWARD[name]
    with Image.open(awkward / "cls" / name) as fixed:
        assert fixed.mode in ("RGB", "P") and fixed.getexif().get(0x0112, 1) == 1
    assert_same_picture(pixels(awkward / "cls" / name), original, EXACT if name in LOSSLESS else FIX_JPEG)


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_a_download_that_needs_no_shrinking_keeps_the_bytes(name):
    data = AWKWARD[name]
    prepared = prepare(data, size=1000)
    assert prepared.data == data and (prepared.width, prepared.height) == Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_a_padded_download_holds_training_s_picture_on_black(name):
    data, tolerance = AWKWARD[name], EXACT if name in LOSSLESS else PAD_JPEG
    want = pixels(data)
    h, w = want.shape[:2]
    side = max(w, h)

    prepared = prepare(data, pad=True)

    got = pixels(prepared.data)
    assert got.shape == (side, side, 3) and (prepared.width, prepared.height) == (side, side)
    top, left = (side - h) // 2, (side - w) // 2
    assert_same_picture(got[top:top + h, left:left + w], want, tolerance)
    outside = np.ones((side, side), bool)
    outside[top:top + h, left:left + w] = False
    assert_same_picture(got[outside], np.zeros_like(got[outside]), tolerance)  # black


@pytest.mark.parametrize("name", LOSSLESS)
def test_a_shrunk_download_is_training_s_picture_shrunk(name):
    data = AWKWARD[name]
    want = open_image(data)
    want.thumbnail((20, 20), Image.Resampling.LANCZOS)

    prepared = prepare(data, size=20)

    assert np.array_equal(pixels(prepared.data), np.asarray(want, dtype=np.int16))


def test_a_padded_png_download_through_the_server_reads_as_the_original_on_black(server, tmp_path):
    data = AWKWARD["rgba.png"]
    url = server.route("/rgba.png", Reply(200, data))

    record = download_images([url], tmp_path, pad=True, progress=False, backoff=0.01, timeout=5.0).records[0]

    got = pixels(tmp_path / record.file)
    assert record.status == "ok" and got.shape == (40, 40, 3)
    assert np.array_equal(got[5:35], pixels(data)) and got[:5].max() == 0 and got[35:].max() == 0


def test_verify_checks_exactly_what_training_reads_plus_misnamed_images(tmp_path):
    root = tmp_path / "data"
    (root / "cls").mkdir(parents=True)
    jpeg = make_image(0, size=(8, 8))
    for ext in sorted(IMAGE_EXTENSIONS):
        (root / "cls" / f"a{ext}").write_bytes(jpeg)
        (root / "cls" / f"b{ext.upper()}").write_bytes(jpeg)
    (root / "cls" / "notes.txt").write_text("not an image")
    (root / "cls" / "photo.heic.bin").write_bytes(jpeg)  # an image by content, not by name

    training = {p.relative_to(root).as_posix() for p in image_files(root)}
    checked = set(find_candidates(root))

    assert len(training) == 2 * len(IMAGE_EXTENSIONS)
    assert checked == training | {"cls/photo.heic.bin"}


def test_both_former_extension_lists_are_in_the_one_list():
    assert {".ppm", ".pgm", ".jpe", ".jfif"} <= IMAGE_EXTENSIONS


def test_every_extension_download_writes_is_one_training_reads():
    assert set(EXTENSIONS.values()) <= IMAGE_EXTENSIONS


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # download's prepare lets Pillow warn
def test_verify_download_and_training_refuse_the_same_too_large_image(tmp_path):
    side = 9460  # 9460² = 89,491,600: just above MAX_PIXELS; a one-bit PNG keeps it small
    assert side * side > MAX_PIXELS > (side - 1) * (side - 1)
    data = blank_image((side, side), mode="1")
    (tmp_path / "big.png").write_bytes(data)

    assert classify(tmp_path / "big.png")[0] == ["too_large"]
    with pytest.raises(ImageProblem, match=f"too large: {side}x{side} pixels \\(limit 89,478,485\\)"):
        prepare(data)
    with pytest.raises(ImageReadError, match=f"{side}×{side} pixels is more than the limit of 89,478,485"):
        open_image(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="more than the limit of 89,478,485"):
        open_image(data)
