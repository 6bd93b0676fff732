"""verify_images: every broken or awkward file is classified, bad ones quarantined, none deleted."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from collect_helpers import blank_image, make_image
from faults.killer import run_and_signal_when, run_killed_at, run_pixclass, wait_gone
from pixclass.cli import main
from pixclass.collect import verify as verify_module
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
    with Image.open(corpus / "dogs/16bit.png") as im:  # flat at 40000: no range, so 40000 / 257 rounded
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (156, 156, 156)


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


def cli(*args: str) -> int:
    """Run the `pixclass` command in-process; its exit code (0 when it returns). The command
    owns its process and may leave Ctrl-C ignored on its way out: put the handler back."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        main(list(args))
    except SystemExit as exit_:
        return exit_.code or 0
    finally:
        signal.signal(signal.SIGINT, handler)
    return 0


def test_cli_verify_lists_problems_and_a_summary(corpus, capsys):
    assert cli("verify", str(corpus), "--no-progress") == 0
    out = capsys.readouterr().out
    assert "cats/empty.jpg: zero_bytes (empty file) -> quarantined (.quarantine/cats/empty.jpg)" in out
    assert f"report: {corpus / 'verify.csv'}" in out


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this OS")
def test_a_pipe_named_like_an_image_is_skipped_not_waited_on(corpus):
    import os

    os.mkfifo(corpus / "cats/pipe.jpg")
    report = verify(corpus, quarantine=False)
    assert "cats/pipe.jpg" not in {c.file for c in report.checks}


# ----- what verify reads: the walk training uses ------------------------------------------------
def test_ppm_and_pgm_files_which_training_reads_are_checked_too(tmp_path):
    im = Image.new("RGB", (40, 30), (10, 20, 30))
    whole = encode(im, "PPM")
    (tmp_path / "good.ppm").write_bytes(whole)
    (tmp_path / "cut.ppm").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "grey.pgm").write_bytes(encode(im.convert("L"), "PPM"))
    report = verify(tmp_path, quarantine=False)
    assert {c.file: c.problem for c in report.checks} == {"cut.ppm": "truncated", "good.ppm": "ok", "grey.pgm": "ok"}


def test_a_dangling_link_is_a_broken_link_and_the_link_itself_is_quarantined(corpus):
    (corpus / "cats/gone.jpg").symlink_to(corpus / "cats/never_was.jpg")
    report = verify(corpus)
    check = next(c for c in report.checks if c.file == "cats/gone.jpg")
    assert (check.problem, check.action) == ("broken_link", "quarantined (.quarantine/cats/gone.jpg)")
    assert check.detail == f"dangling symbolic link to '{corpus / 'cats/never_was.jpg'}' (no such file)"
    assert os.readlink(corpus / ".quarantine/cats/gone.jpg") == str(corpus / "cats/never_was.jpg")
    assert not os.path.lexists(corpus / "cats/gone.jpg")


def test_a_loop_of_links_is_a_broken_link_and_both_links_are_quarantined(corpus):
    (corpus / "cats/x.jpg").symlink_to("y.jpg")
    (corpus / "cats/y.jpg").symlink_to("x.jpg")
    report = verify(corpus)
    assert {c.file: c.problem for c in report.checks if c.file in ("cats/x.jpg", "cats/y.jpg")} == {
        "cats/x.jpg": "broken_link", "cats/y.jpg": "broken_link"}
    assert os.readlink(corpus / ".quarantine/cats/x.jpg") == "y.jpg"


def test_a_link_to_a_bad_file_is_quarantined_and_its_target_is_left_alone(corpus, tmp_path):
    outside = tmp_path / "outside" / "cut.jpg"
    outside.parent.mkdir()
    outside.write_bytes(CORPUS["cats/cut.jpg"][0])
    (corpus / "cats/alias.jpg").symlink_to(outside)
    verify(corpus)
    assert os.readlink(corpus / ".quarantine/cats/alias.jpg") == str(outside)
    assert outside.read_bytes() == CORPUS["cats/cut.jpg"][0]


def test_fix_replaces_a_link_to_an_awkward_image_by_a_fixed_file_and_leaves_the_target_alone(corpus, tmp_path):
    outside = tmp_path / "outside" / "rgba.png"
    outside.parent.mkdir()
    outside.write_bytes(CORPUS["dogs/rgba.png"][0])
    (corpus / "dogs/alias.png").symlink_to(outside)
    verify(corpus, fix=True)
    assert not (corpus / "dogs/alias.png").is_symlink()
    with Image.open(corpus / "dogs/alias.png") as im:
        assert im.mode == "RGB"
    assert os.readlink(corpus / ".quarantine/dogs/alias.png") == str(outside)
    assert outside.read_bytes() == CORPUS["dogs/rgba.png"][0]


def test_a_bad_file_in_a_symlinked_class_folder_is_found_and_quarantined(corpus, tmp_path):
    birds = tmp_path / "elsewhere" / "birds"
    birds.mkdir(parents=True)
    (birds / "cut.jpg").write_bytes(CORPUS["cats/cut.jpg"][0])
    (birds / "good.jpg").write_bytes(CORPUS["cats/good.jpg"][0])
    (corpus / "birds").symlink_to(birds)
    report = verify(corpus)
    assert {c.file: c.problem for c in report.checks if c.file.startswith("birds/")} == {
        "birds/cut.jpg": "truncated", "birds/good.jpg": "ok"}
    assert (corpus / ".quarantine/birds/cut.jpg").read_bytes() == CORPUS["cats/cut.jpg"][0]
    assert sorted(p.name for p in birds.iterdir()) == ["good.jpg"]


def test_a_folder_link_looping_back_is_checked_once(corpus):
    (corpus / "cats/deep/up").symlink_to("../..")
    report = verify(corpus, quarantine=False)
    assert sorted(c.file for c in report.checks) == sorted(CORPUS)


# ----- folders verify cannot work in: one line, nothing touched ---------------------------------
def test_a_file_named_quarantine_is_a_one_line_error_and_nothing_moves(corpus):
    (corpus / ".quarantine").write_text("my notes")
    before = digests(corpus)
    with pytest.raises(PixclassError) as err:
        verify(corpus)
    assert str(err.value) == (f"cannot quarantine into '{corpus / '.quarantine'}': it is a file, not a folder; "
                              "rename or move it away (verify moves bad images into that folder), then run "
                              "verify again")
    assert digests(corpus) == before and (corpus / ".quarantine").read_text() == "my notes"


def test_a_folder_named_verify_csv_is_a_one_line_error(corpus):
    (corpus / "verify.csv").mkdir()
    with pytest.raises(PixclassError, match=r"^cannot write the report '.*verify\.csv': it is a folder \(or not a "
                                            r"file\); rename or move it away, then run verify again$"):
        verify(corpus, quarantine=False)
    assert (corpus / "cats/empty.jpg").exists()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root may write anywhere")
def test_an_unwritable_folder_is_a_one_line_error(corpus):
    corpus.chmod(0o555)
    try:
        with pytest.raises(PixclassError, match=r"^cannot write in '.*data': permission denied .*make it writable"):
            verify(corpus)
    finally:
        corpus.chmod(0o755)


def test_a_second_verify_of_the_same_folder_waits_for_the_first_then_says_so(corpus, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setattr(verify_module, "LOCK_WAIT", 0.3)
    fd = os.open(corpus, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running verify holds it
        with pytest.raises(PixclassError, match=r"^another 'pixclass verify' is working on '.*data'; wait for it"):
            verify(corpus)
    finally:
        os.close(fd)
    assert (corpus / "cats/empty.jpg").exists()


# ----- the summary and the terminal: short whatever the number of files -------------------------
def test_the_summary_counts_problems_and_actions_without_naming_files(tmp_path):
    for i in range(30):
        (tmp_path / f"empty_{i}.jpg").write_bytes(b"")
    (tmp_path / "good.jpg").write_bytes(make_image(1))
    report = verify(tmp_path)
    assert str(report) == f"31 files: 1 ok, 30 zero_bytes (1 kept, 30 quarantined); report: {tmp_path / 'verify.csv'}"


def test_cli_lists_the_first_20_problem_files_then_points_to_verify_csv(tmp_path, capsys):
    for i in range(30):
        (tmp_path / f"empty_{i:02}.jpg").write_bytes(b"")
    assert cli("verify", str(tmp_path), "--no-progress") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "empty_00.jpg: zero_bytes (empty file) -> quarantined (.quarantine/empty_00.jpg)"
    assert lines[19].startswith("empty_19.jpg: ")
    assert lines[20:] == [f"... and 10 more: see {tmp_path / 'verify.csv'}",
                          f"30 files: 30 zero_bytes (30 quarantined); report: {tmp_path / 'verify.csv'}"]


def test_a_fixed_image_keeps_the_permissions_of_the_original(corpus):
    (corpus / "dogs/rgba.png").chmod(0o640)
    verify(corpus, fix=True)
    assert stat.S_IMODE((corpus / "dogs/rgba.png").stat().st_mode) == 0o640


# ----- stopping at any moment: the next run finishes or undoes ----------------------------------
def tree(root: Path) -> dict[str, str]:
    """Every entry under `root` (hidden ones too, through folder links) -> its sha256, or its
    target for a file link; the two logs left out."""
    out = {}
    for dirpath, _, filenames in os.walk(root, followlinks=True):
        for name in filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if rel in ("verify.csv", ".quarantine/quarantine.csv"):
                continue
            out[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def quarantine_rows(root: Path) -> list[dict[str, str]]:
    with (root / ".quarantine/quarantine.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_consistent(root: Path) -> None:
    """No hidden file of ours (a journal, temp or fixed copy) left, and the quarantine's log names
    exactly the files in it, once."""
    hidden = [rel for rel in tree(root) if rel not in NOT_CHECKED and (
        any(part.startswith(".") for part in rel.split("/")[1:])
        or (rel.startswith(".") and not rel.startswith(".quarantine/")))]
    assert hidden == []
    rows = quarantine_rows(root)
    assert all(list(row) == ["file", "moved_to", "problem", "detail"] and None not in row.values() for row in rows)
    moved = [row["moved_to"] for row in rows]
    assert sorted(moved) == sorted(rel for rel in tree(root) if rel.startswith(".quarantine/"))
    assert len(moved) == len(set(moved))


@pytest.fixture
def fixed_corpus(corpus, tmp_path) -> dict[str, str]:
    """What `verify --fix` makes of the corpus when nothing stops it."""
    clean = tmp_path / "clean"
    shutil.copytree(corpus, clean, symlinks=True)
    verify(clean, fix=True, workers=1)
    return tree(clean)


def test_an_older_version_s_hidden_fixed_copy_is_put_in_place_by_the_next_run(corpus, fixed_corpus):
    # What a kill left with the old order: the original moved (unlogged), the fixed copy hidden.
    (corpus / ".quarantine/dogs").mkdir(parents=True)
    os.rename(corpus / "dogs/rgba.png", corpus / ".quarantine/dogs/rgba.png")
    (corpus / "dogs/.rgba.png.fixed").write_bytes(encode(Image.new("RGB", (20, 20), (255, 128, 128)), "PNG"))
    (corpus / "dogs/.rotated.jpg.fixed").write_bytes(b"a copy made while checking")  # original still in place
    verify(corpus, fix=True)
    with Image.open(corpus / "dogs/rgba.png") as im:
        assert im.mode == "RGB"
    assert not list(corpus.rglob("*.fixed"))
    assert (corpus / ".quarantine/dogs/rgba.png").read_bytes() == CORPUS["dogs/rgba.png"][0]
    assert tree(corpus).keys() == fixed_corpus.keys()
    assert_consistent(corpus)


def test_files_in_the_quarantine_without_a_log_row_get_one_and_a_cut_last_line_is_dropped(corpus):
    (corpus / ".quarantine/cats").mkdir(parents=True)
    (corpus / ".quarantine/cats/lost.jpg").write_bytes(b"moved, never logged")
    (corpus / ".quarantine/quarantine.csv").write_text("file,moved_to,problem,detail\r\ncats/x.jpg,.quarantine/ca")
    verify(corpus)
    rows = {row["moved_to"]: row for row in quarantine_rows(corpus)}
    assert rows[".quarantine/cats/lost.jpg"]["problem"] == "unlogged"
    assert rows[".quarantine/cats/empty.jpg"]["problem"] == "zero_bytes"
    assert_consistent(corpus)


@pytest.mark.parametrize(("event", "name", "moment"), [
    ("os.rename", "empty.jpg", "a bad file about to move (its journal row written)"),
    ("open", "quarantine.csv", "the first file moved, its log row not written"),
    ("os.rename", "rgba.png", "the original of a fix about to move"),
    ("os.rename", ".rgba.png.*.tmp", "a fix's original in the quarantine, its fixed image not yet in place"),
    ("os.rename", ".verify.csv.*.tmp", "every move done, the report not yet in place"),
])
def test_a_fix_killed_at_any_step_is_finished_by_the_next_run(corpus, fixed_corpus, event, name, moment):
    killed = run_killed_at(["verify", str(corpus), "--fix", "--workers", "1", "--no-progress"], event, name)
    assert killed.returncode == -signal.SIGKILL, f"never reached: {moment}\n{killed.stderr}"
    verify(corpus, fix=True)
    assert tree(corpus) == fixed_corpus
    assert_consistent(corpus)


@pytest.fixture
def python_ctrl_c():
    """Ctrl-C handled as in a fresh Python (KeyboardInterrupt), here and in the processes started
    here, whatever an earlier in-process command left (it may ignore SIGINT on its way out)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_move_is_held_until_the_move_is_logged(corpus, python_ctrl_c):
    def press_ctrl_c(check):
        if check.moved_to:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        verify(corpus, workers=1, on_check=press_ctrl_c)
    rows = quarantine_rows(corpus)
    assert [row["moved_to"] for row in rows] == [".quarantine/cats/bad_huffman_table.jpg"]
    assert not (corpus / "cats/bad_huffman_table.jpg").exists()
    assert_consistent(corpus)


# ----- Ctrl-C and kill -9 of the whole command: workers never linger ----------------------------
@pytest.fixture(scope="module")
def many_files(tmp_path_factory) -> Path:
    """3,000 small images, every fourth one empty: a run long enough to be stopped half-way."""
    root = tmp_path_factory.mktemp("many") / "data"
    good = make_image(3, size=(32, 32), fmt="PNG")
    for i in range(3000):
        path = root / f"c{i % 3}" / f"img_{i:04}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if i % 4 == 0 else good)
    return root


def logged_moves(root: Path) -> Callable[[], bool]:
    log = root / ".quarantine/quarantine.csv"
    return lambda: log.is_file() and log.read_bytes().count(b"\n") > 10


def test_ctrl_c_stops_verify_with_one_line_saying_what_was_kept(many_files, tmp_path, python_ctrl_c):
    root = tmp_path / "data"
    shutil.copytree(many_files, root)
    out = run_and_signal_when(["verify", str(root), "--workers", "2", "--no-progress"], logged_moves(root),
                              signal.SIGINT)
    assert out.signalled and out.returncode == 130
    assert wait_gone(out.children, timeout=5) == []
    moved = len(quarantine_rows(root))
    assert out.stderr.strip() == (f"pixclass: verify interrupted: {moved} files moved so far are logged in "
                                  f"{root / '.quarantine/quarantine.csv'}; run the same command again to finish")
    assert_consistent(root)
    assert run_pixclass("verify", str(root), "--workers", "2", "--no-progress").returncode == 0
    assert len(quarantine_rows(root)) == 750
    assert_consistent(root)


def test_workers_exit_by_themselves_when_verify_is_killed(many_files, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(many_files, root)
    out = run_and_signal_when(["verify", str(root), "--workers", "2", "--no-progress"], logged_moves(root),
                              signal.SIGKILL)
    assert out.signalled and out.returncode == -signal.SIGKILL and len(out.children) >= 2
    orphans = wait_gone(out.children, timeout=5)
    for pid in orphans:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert orphans == []


# ----- a class folder linked from another filesystem: moves are copies there -------------------
@pytest.fixture
def other_filesystem(tmp_path) -> Path:
    """A folder on another filesystem than `tmp_path` (/dev/shm), removed afterwards."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) to move across")
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="pixclass-test-"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def linked_corpus(corpus, other_filesystem) -> Path:
    """The corpus with its `dogs/` folder living on another filesystem, linked in."""
    shutil.move(str(corpus / "dogs"), str(other_filesystem / "dogs"))
    (corpus / "dogs").symlink_to(other_filesystem / "dogs")
    (other_filesystem / "dogs/cut.jpg").write_bytes(CORPUS["cats/cut.jpg"][0])
    return corpus


def test_across_filesystems_a_bad_file_is_copied_whole_to_the_quarantine_then_removed(linked_corpus):
    verify(linked_corpus, fix=True)
    assert (linked_corpus / ".quarantine/dogs/cut.jpg").read_bytes() == CORPUS["cats/cut.jpg"][0]
    assert (linked_corpus / ".quarantine/dogs/rgba.png").read_bytes() == CORPUS["dogs/rgba.png"][0]
    assert not (linked_corpus / "dogs/cut.jpg").exists()
    with Image.open(linked_corpus / "dogs/rgba.png") as im:
        assert im.mode == "RGB"
    assert_consistent(linked_corpus)


@pytest.mark.parametrize(("event", "name", "moment"), [
    ("os.remove", "cut.jpg", "a bad file copied to the quarantine, not yet removed"),
    ("os.rename", ".rgba.png.*.tmp", "a fix's original copied to the quarantine, the fixed image not in place"),
])
def test_across_filesystems_a_killed_move_is_finished_by_the_next_run(linked_corpus, event, name, moment):
    clean = linked_corpus.parent / "clean"
    shutil.copytree(linked_corpus, clean)  # a real copy of the linked folder, for the expected result
    verify(clean, fix=True)
    killed = run_killed_at(["verify", str(linked_corpus), "--fix", "--workers", "1", "--no-progress"], event, name)
    assert killed.returncode == -signal.SIGKILL, f"never reached: {moment}\n{killed.stderr}"
    verify(linked_corpus, fix=True)
    assert tree(linked_corpus) == tree(clean)
    assert_consistent(linked_corpus)
