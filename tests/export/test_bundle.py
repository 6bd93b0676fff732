"""Export → load → predict: a `.pixclass` file is safetensors only, and predicts what the Learner did."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from imagefiles import SIZE, TINY_ARCH
from pixclass import ImageData, Learner, load_model
from pixclass.errors import PixclassError
from pixclass.export.bundle import read_meta
from pixclass.train.checkpoint import seed_everything


def trained(data: ImageData, tmp_path, **kwargs) -> Learner:
    seed_everything(0)
    learn = Learner(data, arch=TINY_ARCH, pretrained=False, path=tmp_path / "run", progress=False, **kwargs)
    learn.fit_one_cycle(2, lr=1e-2)
    return learn


@pytest.fixture
def exported(class_folders, tmp_path):
    data = ImageData.from_folder(class_folders, valid_pct=0.25, seed=0, size=SIZE, bs=6, num_workers=0)
    learn = trained(data, tmp_path)
    return learn, learn.export(tmp_path / "colours.pixclass")


def test_predictions_of_the_loaded_model_equal_the_learners(exported):
    learn, path = exported
    probs, y = learn.get_preds("valid")

    predictor = load_model(path)

    for i, img in enumerate(learn.data.valid_paths):
        pred = predictor.predict(img)
        expected = probs[i]
        assert torch.allclose(torch.tensor(list(pred.probs.values())), expected, atol=1e-5)
        assert pred.index == int(expected.argmax())
        assert pred.label == learn.data.classes[pred.index]
        assert pred.prob == pytest.approx(float(expected.max()), abs=1e-5)


def test_prediction_fields_name_classes_in_order(exported):
    learn, path = exported

    pred = load_model(path).predict(learn.data.valid_paths[0])

    assert list(pred.probs) == ["blue", "green", "red"]
    assert sum(pred.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert isinstance(pred.index, int) and isinstance(pred.label, str)


def test_a_pil_image_predicts_like_its_file(exported):
    learn, path = exported
    predictor = load_model(path)
    file = learn.data.valid_paths[0]

    with Image.open(file) as img:
        from_pil = predictor.predict(img)

    assert from_pil.probs == pytest.approx(predictor.predict(file).probs, abs=1e-6)


def test_predict_many_reports_unreadable_files_in_place(exported, broken_files):
    learn, path = exported
    files = [learn.data.valid_paths[0], broken_files["html"], learn.data.valid_paths[1]]

    results = list(load_model(path).predict_many(files, bs=2))

    assert [p for p, _, _ in results] == files
    assert results[1][1] is None and results[1][2].startswith("not an image (HTML page")
    assert results[0][1] is not None and results[2][1] is not None


def test_the_bundle_is_a_safetensors_file_with_a_json_description_and_no_pickle(exported):
    learn, path = exported

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["pixclass"])
        keys = set(f.keys())
    raw = path.read_bytes()

    assert not zipfile.is_zipfile(path) and b"\x80\x04\x95" not in raw[:64]  # not a torch/pickle file
    assert keys == set(learn.model.state_dict())
    assert meta["format"] == "pixclass-bundle" and meta["format_version"] == 2
    assert meta["arch"] == TINY_ARCH and meta["task"] == "single"
    assert meta["classes"] == ["blue", "green", "red"] and meta["input_size"] == SIZE
    assert meta["head"]["n_out"] == 3 and meta["head"]["n_in"] == 256
    assert meta["mean"] == pytest.approx(learn.body_info.mean)
    assert meta["training"]["epochs"] == 2 and meta["training"]["n_train"] == 18


def test_multi_label_prediction_returns_the_tags_over_the_threshold(planet_csv, tmp_path):
    data = ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_delim=" ", valid_pct=0.25,
                              size=SIZE, bs=6, num_workers=0)
    learn = trained(data, tmp_path, thresh=0.4)
    probs, _ = learn.get_preds()

    predictor = load_model(learn.export(tmp_path / "planet.pixclass"))

    assert predictor.threshold == 0.4
    labels = []
    for i, img in enumerate(data.valid_paths):
        pred = predictor.predict(img)
        expected = [c for c, p in zip(data.classes, probs[i].tolist()) if p > 0.4]
        assert pred.label == expected and pred.index == [data.classes.index(t) for t in expected]
        assert torch.allclose(torch.tensor(list(pred.probs.values())), probs[i], atol=1e-5)
        labels.append(pred.label)
    assert any(len(tags) >= 2 for tags in labels)  # several tags at once, not just one class


def test_regression_prediction_is_a_float(regression_csv, tmp_path):
    data = ImageData.from_csv(regression_csv, folder="images", valid_col="is_valid", size=SIZE, bs=4,
                              num_workers=0)
    learn = trained(data, tmp_path, y_range=(0.0, 1.0))
    values, _ = learn.get_preds()

    pred = load_model(learn.export(tmp_path / "grey.pixclass")).predict(data.valid_paths[0])

    assert isinstance(pred.label, float) and pred.index is None and pred.probs == {}
    assert pred.label == pytest.approx(float(values[0, 0]), abs=1e-5)


def test_a_non_bundle_file_is_a_clear_error(tmp_path, broken_files):
    with pytest.raises(PixclassError, match="is not a pixclass model \\(not a safetensors file\\)") as err:
        load_model(broken_files["html"])
    assert "\n" not in str(err.value)


def test_a_plain_safetensors_file_is_not_a_bundle(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))

    with pytest.raises(PixclassError, match="safetensors file but not a pixclass model"):
        load_model(tmp_path / "weights.safetensors")


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(PixclassError, match="model file '.*nothing.pixclass' does not exist"):
        read_meta(tmp_path / "nothing.pixclass")


def with_edited_meta(path: Path, dest: Path, edit) -> Path:
    """A copy of bundle `path` at `dest` whose JSON description `edit(meta)` has changed."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["pixclass"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(meta)
    save_file(tensors, str(dest), metadata={"pixclass": json.dumps(meta)})
    return dest


def test_a_newer_bundle_format_asks_to_upgrade(exported, tmp_path):
    _, path = exported
    with_edited_meta(path, tmp_path / "future.pixclass", lambda meta: meta.update(format_version=99))

    with pytest.raises(PixclassError, match="bundle format 99; this pixclass reads up to 2: upgrade pixclass"):
        load_model(tmp_path / "future.pixclass")


def test_a_bundle_whose_description_does_not_match_its_tensors_is_a_clear_error(exported, tmp_path):
    _, path = exported
    def two_classes(meta):  # consistent with itself, but the tensors are for 3 classes
        meta["classes"] = meta["classes"][:2]
        meta["head"].update(n_out=2)

    with_edited_meta(path, tmp_path / "edited.pixclass", two_classes)

    with pytest.raises(PixclassError, match="does not match its own description") as err:
        load_model(tmp_path / "edited.pixclass")
    assert "\n" not in str(err.value)
