"""`pixclass predict` and `pixclass info` from the command line, on a tiny model trained once."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagefiles import save_image
from pixclass.cli import main
from pixclass.data.resize import DEFAULT_RESIZE, RESIZE_METHODS
from pixclass.export.model_file import read_model_meta

from .conftest import run_cli


@pytest.fixture
def photos(tmp_path) -> Path:
    """photos/: three images, one of them with a comma and quotes in its name, and one HTML page."""
    root = tmp_path / "photos"
    save_image(root / "red.jpg", (210, 50, 40), seed=1)
    save_image(root / "green.png", (50, 200, 60), seed=2)
    save_image(root / 'blue, "sky".jpg', (40, 60, 210), seed=3)
    (root / "page.jpg").write_text("<!DOCTYPE html><html><body>404</body></html>\n")
    return root


def pixclass(capsys, *args: str) -> tuple[int, str, str]:
    """Run `pixclass ARGS` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_predict_prints_one_line_per_image_and_the_summary_on_stderr(trained_run, photos, capsys):
    code, out, err = pixclass(capsys, "predict", trained_run / "model.pixclass", photos)

    assert code == 0
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(photos / 'blue, "sky".jpg'), str(photos / "green.png"), str(photos / "page.jpg"), str(photos / "red.jpg")]
    assert lines[2] == f"{photos / 'page.jpg'}: unreadable (not an image (HTML page, 45 B))"
    assert all(line.rsplit(" ", 2)[-2] in ("blue", "green", "red") for line in lines[:2] + lines[3:])
    assert err.splitlines()[0].startswith("predicted 3 of 4 image(s): ")
    assert err.splitlines()[1] == "1 file(s) could not be read; run 'pixclass verify' on their folder"


def test_predict_with_csv_writes_every_file_and_prints_only_the_summary(trained_run, photos, tmp_path, capsys):
    out_csv = tmp_path / "preds.csv"

    code, out, err = pixclass(capsys, "predict", trained_run / "model.pixclass", photos,
                              "--csv", out_csv, "--top-k", "2")

    assert code == 0 and out == ""
    rows = list(csv.DictReader(out_csv.open(newline="", encoding="utf-8")))
    names = ('blue, "sky".jpg', "green.png", "page.jpg", "red.jpg")
    assert [r["path"] for r in rows] == [str(photos / n) for n in names]
    assert list(rows[0]) == ["path", "label", "prob", "error", "top1", "prob1", "top2", "prob2"]
    assert rows[2]["label"] == rows[2]["prob"] == "" and rows[2]["error"] == "not an image (HTML page, 45 B)"
    assert all(r["error"] == "" and r["label"] == r["top1"] for r in rows if r is not rows[2])
    assert err.splitlines()[-1] == f"wrote 4 row(s) to {out_csv}"


def test_sort_into_with_move_then_again_moves_each_file_once(trained_run, photos, tmp_path, capsys):
    sorted_dir = tmp_path / "sorted"

    code, out, err = pixclass(capsys, "predict", trained_run / "model.pixclass", photos, "--sort-into", sorted_dir,
                              "--move", "--no-lines")

    assert code == 0 and out == ""
    assert sorted(p.name for p in photos.iterdir()) == ["page.jpg"]  # the unreadable file stays
    assert sorted(p.name for p in sorted_dir.rglob("*") if p.is_file()) == ['blue, "sky".jpg', "green.png", "red.jpg"]
    assert "sorted into " + str(sorted_dir) + ": 3 moved" in err.splitlines()
    assert "they were left where they are" in err

    code, out, err = pixclass(capsys, "predict", trained_run / "model.pixclass", photos, sorted_dir, "--sort-into",
                              sorted_dir, "--move")

    assert code == 0 and "sorted into " + str(sorted_dir) + ": 3 already there" in err.splitlines()
    assert len([p for p in sorted_dir.rglob("*") if p.is_file()]) == 3


def test_min_prob_one_sends_everything_to_unsure(trained_run, photos, tmp_path, capsys):
    code, out, _ = pixclass(capsys, "predict", trained_run / "model.pixclass", photos / "red.jpg", "--sort-into",
                            tmp_path / "sorted", "--min-prob", "1")

    assert code == 0 and out.endswith(f" -> {tmp_path / 'sorted' / '_unsure' / 'red.jpg'}\n")
    assert [p.name for p in (tmp_path / "sorted" / "_unsure").iterdir()] == ["red.jpg"]


def test_move_without_sort_into_is_one_line_and_exit_code_1(trained_run, photos, capsys):
    code, out, err = pixclass(capsys, "predict", trained_run / "model.pixclass", photos, "--move")

    assert code == 1 and err == "pixclass: --move only applies with --sort-into DIR\n"


def test_a_csv_that_is_not_ours_is_refused_and_kept(trained_run, photos, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\n")

    code, _, err = pixclass(capsys, "predict", trained_run / "model.pixclass", photos, "--csv", labels)

    assert code == 1 and "exists and is not a predictions CSV" in err and labels.read_text() == "file,label\n"


# -- info ----------------------------------------------------------------------------------------

def test_info_prints_what_the_model_is(trained_run, capsys):
    import pixclass as pkg

    code, out, _ = pixclass(capsys, "info", trained_run / "model.pixclass")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"file: {trained_run / 'model.pixclass'} (pixclass bundle, format 2, ")
    assert lines[1:6] == ["arch: test_efficientnet", "task: single-label classification",
                          "classes: 3: blue, green, red",
                          f"input: 32x32 px, resize {DEFAULT_RESIZE}: {RESIZE_METHODS[DEFAULT_RESIZE]}",
                          "normalization: mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]"]
    assert lines[6].startswith("training: 3 epochs, ") and lines[6].endswith(" validation images")
    assert lines[7].startswith("final epoch: epoch 2, train_loss ")
    assert lines[-2:] == ["weights: random init", f"pixclass version: {pkg.__version__}"]


def test_info_json_is_the_models_description(trained_run, capsys):
    code, out, _ = pixclass(capsys, "info", trained_run / "model.pixclass", "--json")

    assert code == 0 and json.loads(out) == read_model_meta(trained_run / "model.pixclass")


def test_info_does_not_import_torch(trained_run):
    code = ("import sys; from pixclass.cli import main\n"
            f"try:\n    main(['info', {str(trained_run / 'model.pixclass')!r}])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "arch: test_efficientnet" in res.stdout and res.stdout.strip().endswith("NO-TORCH"), res.stderr


def test_info_on_a_file_that_is_not_a_model_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.pixclass").write_text("hello")

    code, out, err = pixclass(capsys, "info", tmp_path / "notes.pixclass")

    assert code == 1 and out == ""
    assert err == f"pixclass: '{tmp_path / 'notes.pixclass'}' is not a pixclass model (not a safetensors file); " \
                  f"export one with 'pixclass export RUN'\n"


def test_info_and_predict_on_an_onnx_export(trained_run, photos, capsys):
    res = run_cli("export", str(trained_run), "--onnx")
    if "No such option" in res.stderr:
        pytest.skip("'pixclass export RUN --onnx' does not exist yet")
    assert res.returncode == 0, res.stderr

    code, out, _ = pixclass(capsys, "info", trained_run / "model.onnx")
    assert code == 0 and out.startswith(f"file: {trained_run / 'model.onnx'} (ONNX model, format 2, ")
    assert "classes: 3: blue, green, red" in out.splitlines()

    code, out, _ = pixclass(capsys, "predict", trained_run / "model.onnx", photos / "red.jpg")
    code_b, out_b, _ = pixclass(capsys, "predict", trained_run / "model.pixclass", photos / "red.jpg")
    assert code == code_b == 0 and out.rsplit(" ", 1)[0] == out_b.rsplit(" ", 1)[0]  # same label


def test_a_progress_bar_shows_on_a_terminal_stderr_and_stdout_keeps_the_lines(trained_run, photos):
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pixclass", "predict", str(trained_run / "model.pixclass"),
                             str(photos)], stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    terminal = b""
    while True:  # until the process closes its end of the terminal
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: no writer left
            break
        if not chunk:
            break
        terminal += chunk
    out = proc.communicate(timeout=120)[0]
    os.close(master)

    assert proc.returncode == 0
    assert len(out.splitlines()) == 4 and "predict" not in out
    assert b"4/4" in terminal and b"predicted 3 of 4 image(s)" in terminal
