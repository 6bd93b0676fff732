"""The predictor: any image source, batches, top-k, TTA, both runtimes, and the run's own metrics."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pixclass import load_model
from pixclass.errors import PixclassError

RUNTIMES = ["torch", "onnxruntime"]


@pytest.fixture(scope="module")
def run(colour_learner, tmp_path_factory):
    """The session's tiny trained learner (tests/conftest.py) and its export: (learner, bundle path)."""
    return colour_learner, colour_learner.export(tmp_path_factory.mktemp("predictor") / "colours.pixclass")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_exported_model_reproduces_the_runs_accuracy_on_every_validation_image(run, runtime):
    learn, path = run
    probs, y = learn.get_preds("valid")
    reported = learn.validate()["accuracy"]

    preds = [p for _, p, _ in load_model(path, runtime=runtime).predict_many(learn.data.valid_paths)]

    assert [p.index for p in preds] == probs.argmax(1).tolist()
    got = np.array([list(p.probs.values()) for p in preds])
    assert np.abs(got - probs.numpy()).max() < 1e-5  # fp32 on both sides
    assert np.mean([p.index == int(t) for p, t in zip(preds, y)]) == pytest.approx(reported, abs=1e-12)


def test_both_runtimes_give_the_same_probabilities(run):
    learn, path = run
    files = learn.data.valid_paths

    a = [p.probs for _, p, _ in load_model(path, runtime="torch").predict_many(files)]
    b = [p.probs for _, p, _ in load_model(path, runtime="onnxruntime").predict_many(files)]

    assert all(x == pytest.approx(z, abs=1e-5) for x, z in zip(a, b))


def test_a_path_bytes_a_pil_image_and_an_array_predict_alike(run):
    learn, path = run
    predictor = load_model(path)
    file = learn.data.valid_paths[0]
    with Image.open(file) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")

    expected = predictor.predict(file).probs
    for source in (file, str(file), file.read_bytes(), rgb, np.asarray(rgb)):
        assert predictor.predict(source).probs == pytest.approx(expected, abs=1e-6)


def test_predict_batch_equals_predicting_one_at_a_time(run):
    learn, path = run
    predictor = load_model(path)
    files = learn.data.valid_paths[:5]

    batch = predictor.predict_batch(files)

    assert [b.probs for b in batch] == [pytest.approx(predictor.predict(f).probs, abs=1e-6) for f in files]


def test_predict_batch_names_the_first_unreadable_image(run, broken_files):
    learn, path = run

    with pytest.raises(PixclassError, match="page.jpg.*not an image"):
        load_model(path).predict_batch([learn.data.valid_paths[0], broken_files["html"]])


def test_top_k_lists_classes_by_probability_highest_first(run):
    learn, path = run

    pred = load_model(path).predict(learn.data.valid_paths[0])

    top = pred.top(2)
    assert len(top) == 2 and top[0] == (pred.label, pred.prob)
    assert top[0][1] >= top[1][1]
    assert sorted(pred.probs.values(), reverse=True)[:2] == [p for _, p in top]
    as_json = pred.to_dict(top_k=2)
    assert as_json["label"] == pred.label and as_json["top"] == [{"label": c, "prob": p} for c, p in top]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tta_averages_the_image_and_its_mirror_image(run, runtime):
    learn, path = run
    predictor = load_model(path, runtime=runtime)
    file = learn.data.valid_paths[0]
    with Image.open(file) as img:
        mirrored = io.BytesIO()
        ImageOps.mirror(img.convert("RGB")).save(mirrored, "PNG")

    plain, flipped = predictor.predict(file).probs, predictor.predict(mirrored.getvalue()).probs

    expected = {c: (plain[c] + flipped[c]) / 2 for c in plain}
    assert predictor.predict(file, tta=True).probs == pytest.approx(expected, abs=1e-5)


def test_learner_tta_equals_the_predictors_tta_on_the_validation_set(run):
    learn, path = run

    probs, y = learn.tta()
    preds = [p for _, p, _ in load_model(path).predict_many(learn.data.valid_paths, tta=True)]

    assert np.abs(np.array([list(p.probs.values()) for p in preds]) - probs.numpy()).max() < 1e-5
    assert set(learn.metrics_of(probs, y)) == set(learn.metrics)
    accuracy = float((probs.argmax(1) == y).float().mean())
    assert learn.metrics_of(probs, y)["accuracy"] == pytest.approx(accuracy)


def test_the_model_is_warm_when_load_model_returns(run):
    _, path = run

    predictor = load_model(path)

    assert predictor.runtime == "onnxruntime"  # the default where ONNX Runtime is installed
    assert predictor.info()["runtime"] == "onnxruntime"
    assert predictor.info()["classes"] == ["blue", "green", "red"]


def test_an_unknown_runtime_is_refused_in_one_line(run):
    _, path = run

    with pytest.raises(PixclassError, match="runtime must be one of auto, onnxruntime, torch; got 'tf'"):
        load_model(path, runtime="tf")


def test_importing_the_predictor_does_not_import_torch():
    code = "import sys, pixclass.export.predictor, pixclass.data.preprocess; print('torch' in sys.modules)"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "False"


def test_validation_preprocessing_is_the_predictors(run):
    learn, path = run
    from pixclass.data.images import open_image

    x, _ = next(learn.data.batches(learn.data.loader("valid", shuffle=False, augment=False)))
    predictor = load_model(path)

    assert torch.equal(x[0], torch.from_numpy(predictor.array(learn.data.valid_paths[0])))
    assert predictor.array(open_image(Path(learn.data.valid_paths[0]))).dtype == np.float32
