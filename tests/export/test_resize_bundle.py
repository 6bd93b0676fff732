"""The resize method travels with the model: a bundle (and its ONNX export) trained with "pad" or
"squish" preprocesses as its run validated, and format-1 bundles still load and predict as "crop"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from imagefiles import CLASS_COLOURS, SIZE
from pixclass import ImageData, load_model
from pixclass.data.augment import IMAGENET_MEAN, IMAGENET_STD
from pixclass.data.images import open_image
from pixclass.data.preprocess import eval_array
from pixclass.errors import PixclassError
from pixclass.export.bundle_meta import FORMAT_VERSION, RESIZE, validate_meta
from pixclass.export.onnx import export_onnx
from test_bundle import trained, with_edited_meta

SHAPES = [(64, 32), (32, 64), (72, 24), (40, 40)]  # wide, tall, very wide, square


def write_shaped_folders(root: Path, n_per_class: int = 8) -> Path:
    """`root/<class>/*.png`: the class colour plus noise, in wide, tall and square shapes."""
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(n_per_class):
            w, h = SHAPES[i % len(SHAPES)]
            rng = np.random.default_rng(c * 100 + i)
            arr = np.asarray(colour, np.int16) + rng.integers(-40, 41, size=(h, w, 3), dtype=np.int16)
            path = root / name / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB").save(path)
    return root


@pytest.fixture(scope="module")
def shaped(tmp_path_factory) -> Path:
    return write_shaped_folders(tmp_path_factory.mktemp("shaped") / "data")


@pytest.fixture(scope="module", params=["pad", "squish", "crop"])
def run(request, shaped, tmp_path_factory):
    """A tiny learner trained with one resize method, and its bundle."""
    tmp = tmp_path_factory.mktemp(f"resize-{request.param}")
    data = ImageData.from_folder(shaped, valid_pct=0.25, seed=0, size=SIZE, bs=6, num_workers=0,
                                 resize=request.param)
    learn = trained(data, tmp)
    return learn, learn.export(tmp / "model.pixclass")


def bundle_meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["pixclass"])


def test_the_bundle_records_the_method_it_was_trained_with(run):
    learn, path = run

    meta = bundle_meta(path)

    assert meta["resize"] == learn.data.resize and meta["format_version"] == FORMAT_VERSION == 2


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "onnx-file"])
def test_the_predictor_gives_the_learners_validation_probabilities(run, runtime, tmp_path):
    learn, path = run
    probs, _ = learn.get_preds("valid")
    model = (load_model(export_onnx(path, tmp_path / "model.onnx")) if runtime == "onnx-file"
             else load_model(path, runtime=runtime))

    preds = [p for _, p, _ in model.predict_many(learn.data.valid_paths)]

    assert model.resize == learn.data.resize
    assert np.abs(np.array([list(p.probs.values()) for p in preds]) - probs.numpy()).max() < 1e-5


def test_the_predictor_preprocesses_with_the_bundles_method(run):
    learn, path = run
    file = next(p for p in learn.data.valid_paths if Image.open(p).size != (40, 40))
    model = load_model(path)

    got = model.array(file)

    expected = {m: eval_array(open_image(file), SIZE, IMAGENET_MEAN, IMAGENET_STD, m)
                for m in ("crop", "pad", "squish")}
    assert [m for m, x in expected.items() if np.array_equal(got, x)] == [learn.data.resize]


def test_a_format_1_bundle_loads_and_predicts_as_crop(shaped, tmp_path):
    data = ImageData.from_folder(shaped, valid_pct=0.25, seed=0, size=SIZE, bs=6, num_workers=0, resize="crop")
    learn = trained(data, tmp_path)
    old = with_edited_meta(learn.export(tmp_path / "new.pixclass"), tmp_path / "old.pixclass",
                           lambda meta: meta.update(format_version=1, resize=RESIZE))
    probs, _ = learn.get_preds("valid")

    for runtime in ("torch", "onnxruntime"):
        model = load_model(old, runtime=runtime)
        preds = [p for _, p, _ in model.predict_many(data.valid_paths)]
        assert model.resize == "crop" and model.info()["resize"] == "crop"
        assert np.abs(np.array([list(p.probs.values()) for p in preds]) - probs.numpy()).max() < 1e-5


def test_an_unknown_resize_in_a_description_is_refused_naming_the_methods(run, tmp_path):
    _, path = run
    meta = {**bundle_meta(path), "resize": "stretch"}

    with pytest.raises(PixclassError, match=r"field 'resize' is \"stretch\", expected one of \"crop\", \"pad\", "
                                            r"\"squish\", \"shorter-side-then-center-crop\""):
        validate_meta(meta, "m.pixclass")


def test_pixclass_info_shows_the_method(run):
    learn, path = run

    out = subprocess.run([sys.executable, "-m", "pixclass", "info", str(path)], capture_output=True, text=True,
                         check=True).stdout

    assert f"input: {SIZE}x{SIZE} px, resize {learn.data.resize}: " in out
