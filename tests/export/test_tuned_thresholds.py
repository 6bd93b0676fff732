"""Per-tag thresholds tuned on validation travel in the model file and decide its predictions,
on both runtimes; a model file cannot carry thresholds that do not fit it."""

from __future__ import annotations

import pytest

from imagefiles import SIZE, TINY_ARCH
from pixclass import ImageData, Learner, load_model
from pixclass.errors import PixclassError
from pixclass.export.bundle import read_meta
from pixclass.export.model_file import info_lines
from pixclass.train.checkpoint import seed_everything


@pytest.fixture(scope="module")
def planet_learner(tmp_path_factory):
    from imagefiles import write_planet

    root = tmp_path_factory.mktemp("tuned")
    planet = write_planet(root / "planet", 32)
    data = ImageData.from_csv(planet, folder="train-jpg", suffix=".jpg", label_delim=" ", valid_pct=0.25, seed=0,
                              size=SIZE, bs=6, num_workers=0)
    seed_everything(0)
    learn = Learner(data, arch=TINY_ARCH, pretrained=False, path=root / "run", progress=False)
    learn.fit_one_cycle(2, lr=1e-2)
    return learn


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_a_model_exported_with_tuned_thresholds_predicts_each_tag_above_its_own(planet_learner, tmp_path, runtime):
    k = len(planet_learner.data.classes)
    thresholds = [round(0.2 + 0.6 * i / max(1, k - 1), 2) for i in range(k)]  # a different number per tag
    probs, _ = planet_learner.get_preds()

    path = planet_learner.export(tmp_path / "tuned.pixclass", thresholds=thresholds)
    model = load_model(path, runtime=runtime)

    assert read_meta(path)["thresholds"] == thresholds and model.thresholds == thresholds
    for i, img in enumerate(planet_learner.data.valid_paths):
        expected = [c for c, p, t in zip(planet_learner.data.classes, probs[i].tolist(), thresholds) if p > t]
        assert model.predict(img).label == expected
    assert any(line.startswith("thresholds: one per tag, tuned, 0.2 to 0.8")
               for line in info_lines(read_meta(path), path))


def test_thresholds_from_the_interpretation_round_trip_into_the_model(planet_learner, tmp_path):
    tuned = planet_learner.interpret().tune_thresholds()

    model = load_model(planet_learner.export(tmp_path / "tuned.pixclass", thresholds=tuned), runtime="torch")

    assert model.thresholds == tuned and model.info()["thresholds"] == tuned


def test_thresholds_of_the_wrong_count_are_refused_and_nothing_is_written(planet_learner, tmp_path):
    k = len(planet_learner.data.classes)

    with pytest.raises(PixclassError, match=f"'thresholds' has {k + 1} numbers .* with {k} classes"):
        planet_learner.export(tmp_path / "bad.pixclass", thresholds=[0.5] * (k + 1))
    assert not (tmp_path / "bad.pixclass").exists()


def test_a_threshold_outside_zero_and_one_is_refused(planet_learner, tmp_path):
    k = len(planet_learner.data.classes)

    with pytest.raises(PixclassError, match="field 'thresholds' .* expected a list of numbers in \\(0, 1\\)"):
        planet_learner.export(tmp_path / "bad.pixclass", thresholds=[1.5] * k)
