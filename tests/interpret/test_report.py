"""RUN/report.html of tiny runs trained by `pixclass train` (single-label, multi-label, regression):
one self-contained page with every section, images embedded, every name escaped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from imagefiles import CLASS_COLOURS, save_image, write_brightness, write_planet

TINY = ["--arch", "test_efficientnet", "--no-pretrained", "--size", "32", "--bs", "8", "--workers", "0",
        "--epochs", "3", "--unfreeze-epochs", "0"]
GIVEN_LR = ("--lr", "1e-2")  # no lr_find: a second faster
HEADINGS = ["Data", "Training", "Results", "Speed", "Limits", "Diagnosis", "Data issues"]
# A class whose name is HTML: it must show as text, never as markup.
ODD_CLASS = 'red<b>&"co'


def pixclass(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixclass", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def train(out: Path, *data_args: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    res = pixclass("train", *data_args, *TINY, *extra, "--out", str(out))
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> tuple[Path, str]:
    """Three colour classes, one named like HTML; trained by the CLI (with lr_find), which writes
    the report."""
    root = tmp_path_factory.mktemp("report_single")
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        folder = ODD_CLASS if name == "red" else name
        for i in range(8):
            save_image(root / "data" / folder / f"{name}_{i}.png", colour, seed=c * 100 + i)
    res = train(root / "run", str(root / "data"))
    return root / "run", res.stdout


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report_multi")
    planet = write_planet(root / "planet")
    train(root / "run", str(planet / "labels.csv"), "--folder", "train-jpg", "--label-delim", " ", extra=GIVEN_LR)
    return root / "run"


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report_regression")
    data = write_brightness(root / "brightness")
    train(root / "run", str(data / "labels.csv"), "--folder", "images", "--valid-col", "is_valid", extra=GIVEN_LR)
    return root / "run"


class Refs(HTMLParser):
    """Every <img src>, every src/href of any tag, and the h2 headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs.get("src") or "")
        self.links += [v or "" for k, v in attrs.items() if k in ("src", "href")]
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


def refs(page: str) -> Refs:
    parser = Refs()
    parser.feed(page)
    return parser


def assert_self_contained(page: str) -> None:
    r = refs(page)
    assert r.imgs and all(src.startswith("data:image/") for src in r.imgs)
    assert all(link.startswith(("data:", "#")) for link in r.links)
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_train_writes_the_report_and_prints_its_path(single_run):
    run, stdout = single_run

    assert f"report: {run / 'report.html'}" in stdout.splitlines()
    assert (run / "report.html").is_file()


def test_a_single_label_report_has_every_section_and_embeds_every_image(single_run):
    page = (single_run[0] / "report.html").read_text(encoding="utf-8")

    assert refs(page).h2 == HEADINGS
    assert_self_contained(page)
    assert len(refs(page).imgs) == 6  # lr_find, losses, lr, two confusion matrices, top losses
    for name in ("blue", "green"):
        assert f"<td>{name}</td>" in page
    assert "Most confused" in page and "Per class" in page and "Linear-probe floor" in page


def test_a_class_name_with_markup_is_escaped_everywhere(single_run):
    page = (single_run[0] / "report.html").read_text(encoding="utf-8")

    assert ODD_CLASS not in page
    assert "<td>red&lt;b&gt;&amp;&quot;co</td>" in page


def test_the_diagnosis_names_the_tiny_classes(single_run):
    page = (single_run[0] / "report.html").read_text(encoding="utf-8")

    assert 'class="finding warning"' in page
    assert "tiny_classes" in page  # 6 or so training images per class, under MIN_CLASS_IMAGES


def test_without_label_issues_or_dupes_the_report_says_which_commands_make_them(single_run):
    run = single_run[0]
    page = (run / "report.html").read_text(encoding="utf-8")

    assert f"&#x27;pixclass label-issues {run}&#x27;" in page
    assert f"&#x27;pixclass dupes {run} --csv {run / 'dupes.csv'}&#x27;" in page


def test_a_multi_label_report_has_the_per_tag_table_and_no_confused_pairs(multi_run):
    page = (multi_run / "report.html").read_text(encoding="utf-8")

    assert refs(page).h2 == HEADINGS
    assert_self_contained(page)
    assert "Per tag" in page and "Most confused" not in page
    for tag in ("red", "green", "blue"):
        assert f"<td>{tag}</td>" in page


def test_a_regression_report_has_the_residual_plot_and_the_mse(regression_run):
    page = (regression_run / "report.html").read_text(encoding="utf-8")

    assert refs(page).h2 == HEADINGS
    assert_self_contained(page)
    assert 'alt="predicted against actual, and residuals"' in page
    assert "Mean squared error on the 4 validation images" in page
    assert "Confusion" not in page and "<h3>Targets</h3>" in page


def test_label_issues_and_dupes_of_the_run_are_shown_and_a_leak_is_diagnosed(single_run, tmp_path):
    from pixclass.interpret.report import write_report

    run = tmp_path / "run"
    shutil.copytree(single_run[0], run)
    data = Path(json.loads((run / "config.json").read_text())["data"])
    a, b = sorted((data / "blue").iterdir())[:2]
    (run / "label_issues.csv").write_text("path,label,suggested,score,loss,split,issue\n"
                                          f"{a},blue,green,0.97,3.2,train,1\n{b},blue,blue,0.01,0.02,valid,0\n")
    (run / "dupes.csv").write_text(f"a,b,kind,distance\n{a},{b},leak,0\n")

    page = write_report(run).read_text(encoding="utf-8")

    assert "1 of 2 images are flagged as likely mislabelled" in page
    assert page.count('class="thumb" src="data:image/jpeg;base64,') == 2
    assert "1 pairs: 0 exact, 0 near, 1 leaks." in page
    assert 'class="finding error"><span class="kind">error: leakage</span>' in page
    assert_self_contained(page)


def test_an_exact_copy_across_the_split_is_a_leak_and_a_near_one_is_only_counted(single_run, tmp_path):
    from pixclass.interpret.report import write_report
    from pixclass.train.recipe import TrainConfig, build_data

    run = tmp_path / "run"
    shutil.copytree(single_run[0], run)
    data = build_data(TrainConfig.load(run))
    (t1, t2), (v1, v2) = data.train_paths[:2], data.valid_paths[:2]
    (run / "dupes.csv").write_text(f"a,b,kind,distance\n{t1},{v1},exact,0\n{v2},{t2},near,3\n")

    page = write_report(run).read_text(encoding="utf-8")

    assert "2 pairs have one image in this run&#x27;s training split and one in its validation split (1 exact" in page
    assert "error: leakage</span> 1 picture is in both the training and the validation set" in page


def test_a_run_without_validation_gets_a_report_that_says_nothing_measures_unseen_images(tmp_path):
    from imagefiles import write_class_folders

    data = write_class_folders(tmp_path / "data", 6)
    train(tmp_path / "run", str(data), extra=(*GIVEN_LR, "--valid-pct", "0"))
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")

    assert refs(page).h2 == HEADINGS
    assert "No validation set: the run was trained on all its images" in page
    assert "There is no validation set, so nothing in this report measures" in page
    assert "lr_too_high" not in page and "Confusion" not in page


def test_a_ctrl_c_while_the_report_is_written_keeps_the_trained_run_and_exits_0(tmp_path):
    from imagefiles import write_class_folders

    data = write_class_folders(tmp_path / "data", 6)
    run = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "pixclass", "train", str(data), *TINY, *GIVEN_LR,
                              "--out", str(run)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in child.stdout:  # Ctrl-C (to the whole group, as a terminal sends it) as the report starts
        if line.startswith("writing the report ("):
            os.killpg(child.pid, signal.SIGINT)
            break
    out, err = child.communicate(timeout=300)

    assert child.returncode == 0, err
    assert err.strip().splitlines()[-1] == (f"pixclass: report not written (interrupted); the trained run is complete: "
                                            f"'pixclass interpret {run}' writes it")
    assert (run / "model.pixclass").is_file() and not (run / "report.html").exists()
    assert "report: " not in out


@pytest.mark.slow  # two CLI runs: about 20 s
def test_train_with_no_report_writes_none_and_interpret_writes_it(tmp_path):
    from imagefiles import write_class_folders

    data = write_class_folders(tmp_path / "data", 6)
    res = train(tmp_path / "run", str(data), extra=(*GIVEN_LR, "--no-report"))
    assert not (tmp_path / "run" / "report.html").exists()
    assert not any(line.startswith("report:") for line in res.stdout.splitlines())

    res = pixclass("interpret", str(tmp_path / "run"))

    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == f"report: {tmp_path / 'run' / 'report.html'}"
    assert refs((tmp_path / "run" / "report.html").read_text(encoding="utf-8")).h2 == HEADINGS


def test_a_folder_that_is_not_a_finished_run_gets_no_report(tmp_path):
    from pixclass.errors import PixclassError
    from pixclass.interpret.report import write_report

    (tmp_path / "config.json").write_text('{"data": "x"}')

    with pytest.raises(PixclassError, match="has no summary.json: the run has not finished"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
