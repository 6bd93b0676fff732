"""verify_images: every broken or awkward file is classified, bad ones quarantined, none deleted."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from collect_helpers import blank_image, make_image
from PIL import Image, ImageFile

from pixclass.cli import main
from pixclass.collect import verify_images
from pixclass.errors import PixclassError

pytestmark = pytest.mark.timeout(120)

MAX_PIXELS = 1_000_000


def encode(im: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return encode(Image.open(io.BytesIO(make_image(4, size=(60, 30)))), "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def sixteen_bit_png() -> bytes:
    im = Image.new("I;16", (20, 20))
    im.putdata([40000] * 400)  # bright, but far above 255: clipping would turn it white
    return encode(im, "PNG")


def palette_alpha_png() -> bytes:
    im = Image.new("P", (20, 20), 0)
    return encode(im, "PNG", transparency=0)


def cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def scrambled(data: bytes) -> bytes:
    """Same length, 50 bytes in the middle inverted: the compressed stream is garbage."""
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 50]) + data[mid + 50:]


def bad_huffman_table(data: bytes) -> bytes:
    """Pillow opens it (it skips DHT); libjpeg refuses the table when it decodes."""
    at = data.find(b"\xff\xc4")
    return data[: at + 5] + b"\xff" * 16 + data[at + 21 :]


# file -> (bytes, expected problem)
CORPUS = {
    "cats/good.jpg": (make_image(1, size=(80, 60)), "ok"),
    "cats/good.png": (make_image(2, fmt="PNG"), "ok"),
    "cats/gray.png": (make_image(3, fmt="PNG", mode="L"), "ok"),
    "cats/no_extension": (make_image(5), "ok"),
    "cats/empty.jpg": (b"", "zero_bytes"),
    "cats/page.jpg": (b"<!doctype html><html><body>Not found</body></html>", "not_image"),
    "cats/cut.jpg": (cut(make_image(6, size=(128, 128))), "truncated"),
    "cats/cut_progressive.jpg": (cut(make_image(10, size=(128, 96), fmt="JPEG", progressive=True)), "truncated"),
    "cats/no_eoi.jpg": (make_image(11, size=(80, 60))[:-2], "truncated"),
    "cats/trailing_bytes.jpg": (make_image(12, size=(80, 60)) + b"camera maker's trailer", "ok"),
    "cats/bad_huffman_table.jpg": (bad_huffman_table(make_image(13, size=(80, 60))), "corrupt"),
    "cats/deep/er/cut.png": (cut(make_image(7, size=(128, 128), fmt="PNG")), "truncated"),
    "cats/scrambled.png": (scrambled(make_image(8, size=(64, 64), fmt="PNG")), "corrupt"),
    "cats/bomb.png": (blank_image((1200, 1000)), "too_large"),
    "dogs/animated.gif": (animated_gif(), "animated"),
    "dogs/cmyk.jpg": (encode(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"), "odd_mode"),
    "dogs/16bit.png": (sixteen_bit_png(), "odd_mode"),
    "dogs/palette_alpha.png": (palette_alpha_png(), "odd_mode"),
    "dogs/rgba.png": (encode(Image.new("RGBA", (20, 20), (255, 0, 0, 128)), "PNG"), "odd_mode"),
    "dogs/rotated.jpg": (rotated_jpeg(), "rotated"),
}
NOT_CHECKED = {"manifest.csv": b"url,file\n", "notes.txt": b"remember the milk", "cats/.hidden.jpg": b""}
BAD = {f for f, (_, p) in CORPUS.items() if p in ("zero_bytes", "not_image", "truncated", "corrupt", "too_large")}


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "data"
    for rel, data in {**{f: d for f, (d, _) in CORPUS.items()}, **NOT_CHECKED}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def digests(root: Path) -> list[str]:
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*")
                  if p.is_file() and p.name not in ("verify.csv", "quarantine.csv"))


def verify(root: Path, **kw):
    return verify_images(root, max_pixels=MAX_PIXELS, progress=False, **kw)


def test_every_file_is_classified(corpus):
    report = verify(corpus, quarantine=False)
    assert {c.file: c.problem for c in report.checks} == {f: p for f, (_, p) in CORPUS.items()}


def test_the_skeleton_check_gives_the_full_decodes_verdicts(corpus):
    fast = verify(corpus, quarantine=False)
    full = verify(corpus, quarantine=False, full_decode=True)
    assert [(c.file, c.problem) for c in fast.checks] == [(c.file, c.problem) for c in full.checks]


def test_bad_files_move_to_the_quarantine_keeping_their_relative_paths(corpus):
    verify(corpus)
    for rel in BAD:
        assert not (corpus / rel).exists()
        assert (corpus / ".quarantine" / rel).read_bytes() == CORPUS[rel][0]


def test_no_file_is_ever_deleted(corpus):
    before = digests(corpus)
    verify(corpus)
    assert digests(corpus) == before


def test_usable_but_awkward_files_stay_in_place_without_fix(corpus):
    verify(corpus)
    for rel, (data, problem) in CORPUS.items():
        if problem in ("ok", "animated", "odd_mode", "rotated"):
            assert (corpus / rel).read_bytes() == data


def test_the_report_lists_file_problem_and_action(corpus):
    report = verify(corpus)
    with report.report.open(newline="") as fh:
        rows = {row["file"]: row for row in csv.DictReader(fh)}
    assert rows["cats/cut.jpg"]["problem"] == "truncated"
    assert rows["cats/cut.jpg"]["action"] == "quarantined (.quarantine/cats/cut.jpg)"
    assert rows["dogs/cmyk.jpg"]["action"] == "kept" and rows["dogs/cmyk.jpg"]["detail"] == "CMYK"
    assert rows["cats/good.jpg"]["problem"] == "ok"


def test_data_files_and_hidden_files_are_neither_checked_nor_moved(corpus):
    report = verify(corpus)
    checked = {c.file for c in report.checks}
    for rel, data in NOT_CHECKED.items():
        assert rel not in checked and (corpus / rel).read_bytes() == data


def test_a_rescan_ignores_the_quarantine_and_finds_nothing_new(corpus):
    verify(corpus)
    again = verify(corpus)
    assert again.count("quarantined") == 0
    assert not any(c.file.startswith(".quarantine") for c in again.checks)


def test_a_taken_quarantine_name_gets_a_suffix(corpus):
    verify(corpus)
    (corpus / "cats/empty.jpg").write_bytes(b"")  # the same bad file comes back
    verify(corpus)
    assert (corpus / ".quarantine/cats/empty.jpg").exists()
    assert (corpus / ".quarantine/cats/empty-1.jpg").exists()


def test_dry_run_moves_nothing(corpus):
    before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    report = verify(corpus, quarantine=False)
    assert all((p.read_bytes() == b) for p, b in before.items())
    assert not (corpus / ".quarantine").exists()
    assert {c.action for c in report.checks if c.file in BAD} == {"would quarantine"}


def test_fix_rewrites_cmyk_to_rgb_and_keeps_the_original(corpus):
    verify(corpus, fix=True)
    with Image.open(corpus / "dogs/cmyk.jpg") as im:
        assert im.mode == "RGB"
    assert (corpus / ".quarantine/dogs/cmyk.jpg").read_bytes() == CORPUS["dogs/cmyk.jpg"][0]


def test_fix_turns_an_exif_rotated_photo_upright(corpus):
    verify(corpus, fix=True)
    with Image.open(corpus / "dogs/rotated.jpg") as im:
        assert im.size == (30, 60) and im.getexif().get(0x0112, 1) == 1


def test_fix_scales_16_bit_down_instead_of_clipping(corpus):
    verify(corpus, fix=True)
    with Image.open(corpus / "dogs/16bit.png") as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (155, 155, 155)  # 40000 / 257


def test_fix_puts_transparency_on_white(corpus):
    verify(corpus, fix=True)
    with Image.open(corpus / "dogs/palette_alpha.png") as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)


def test_fix_keeps_the_first_frame_of_an_animation(corpus):
    verify(corpus, fix=True)
    with Image.open(corpus / "dogs/animated.gif") as im:
        assert getattr(im, "n_frames", 1) == 1


def test_max_size_reports_and_fix_shrinks_large_images(corpus):
    report = verify(corpus, max_size=50, quarantine=False)
    assert "oversized" in next(c for c in report.checks if c.file == "cats/good.jpg").problems
    verify(corpus, max_size=50, fix=True)
    with Image.open(corpus / "cats/good.jpg") as im:
        assert im.size == (50, 38)


def test_truncation_is_caught_even_if_pillow_was_told_to_accept_it(corpus, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    report = verify(corpus, quarantine=False, workers=1)
    assert next(c for c in report.checks if c.file == "cats/cut.jpg").problem == "truncated"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PixclassError, match="cannot verify .*: not a folder"):
        verify_images(tmp_path / "nope")


def test_cli_verify_lists_problems_and_a_summary(corpus, capsys):
    main(["verify", str(corpus), "--no-progress"])
    out = capsys.readouterr().out
    assert "cats/empty.jpg: zero_bytes (empty file) -> quarantined (.quarantine/cats/empty.jpg)" in out
    assert f"report: {corpus / 'verify.csv'}" in out


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this OS")
def test_a_pipe_named_like_an_image_is_skipped_not_waited_on(corpus):
    import os

    os.mkfifo(corpus / "cats/pipe.jpg")
    report = verify(corpus, quarantine=False)
    assert "cats/pipe.jpg" not in {c.file for c in report.checks}
