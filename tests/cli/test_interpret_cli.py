"""`pixclass interpret RUN` on a tiny run trained by the CLI: the table, the pairs and the plots."""

from __future__ import annotations

import json

from pixclass.export.bundle import read_meta

from .conftest import TINY, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


def test_interpret_prints_the_per_class_table_and_writes_the_plots(trained_run):
    res = run_cli("interpret", str(trained_run), "--top-losses", "4")

    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert [line.split()[0] for line in lines[1:4]] == ["blue", "green", "red"]
    assert any(line.startswith(("most confused", "no wrong pair")) for line in lines)
    for name in ("confusion.png", "confusion_normalized.png", "top_losses.png"):
        assert (trained_run / "interpret" / name).read_bytes()[:8] == PNG, name


def test_interpret_writes_the_report_and_prints_its_path_last(trained_run):
    res = run_cli("interpret", str(trained_run))

    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == f"report: {trained_run / 'report.html'}"
    page = (trained_run / "report.html").read_text(encoding="utf-8")
    assert '<h2>Diagnosis</h2>' in page and "<td>blue</td>" in page


def test_interpret_of_a_folder_that_is_not_a_run_says_so_in_one_line(tmp_path):
    res = run_cli("interpret", str(tmp_path))

    assert res.returncode == 1
    assert res.stderr.strip() == f"pixclass: cannot interpret '{tmp_path}': it is not a training run (no config.json)"


def test_interpret_of_a_multi_label_run_gives_the_table_per_tag_and_no_pairs(planet_csv, tmp_path):
    train = run_cli("train", str(planet_csv), "--folder", "train-jpg", "--label-delim", " ", *TINY, "--epochs", "1",
                    "--unfreeze-epochs", "0", "--lr", "1e-2", "--out", str(tmp_path / "run"))
    assert train.returncode == 0, train.stderr

    res = run_cli("interpret", str(tmp_path / "run"))

    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:5]] == ["blue", "clear", "red", "plots:"]
    for name in ("confusion.png", "confusion_normalized.png", "top_losses.png"):
        assert (tmp_path / "run" / "interpret" / name).read_bytes()[:8] == PNG, name

    tuned = run_cli("interpret", str(tmp_path / "run"), "--tune-thresholds", "--heatmap", "--top-losses", "2")

    assert tuned.returncode == 0, tuned.stderr
    saved = json.loads((tmp_path / "run" / "thresholds.json").read_text())
    line = next(x for x in tuned.stdout.splitlines() if x.startswith("thresholds (F2 on validation): "))
    expected = ", ".join(f"{c} {t:g}" for c, t in zip(["blue", "clear", "red"], saved["thresholds"]))
    assert line.split(": ", 1)[1] == expected
    assert read_meta(tmp_path / "run" / "model.pixclass")["thresholds"] == saved["thresholds"]
    assert (tmp_path / "run" / "interpret" / "top_losses.png").read_bytes()[:8] == PNG
    again = run_cli("export", str(tmp_path / "run"), "--out", str(tmp_path / "again.pixclass"))
    assert again.returncode == 0, again.stderr
    assert read_meta(tmp_path / "again.pixclass")["thresholds"] == saved["thresholds"]  # later exports keep them


def test_tuning_thresholds_of_a_single_label_run_is_refused_in_one_line_and_writes_nothing(trained_run):
    res = run_cli("interpret", str(trained_run), "--tune-thresholds")

    assert res.returncode == 1
    assert res.stderr.strip() == "pixclass: threshold tuning needs a multi task; this interpretation is single"
    assert not (trained_run / "thresholds.json").exists()
