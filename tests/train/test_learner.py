"""Learner end to end on tiny real images: frozen (cached features) and unfrozen training,
repeatable seeds, save/load, multi-label and regression, and unreadable files."""

from __future__ import annotations

import shutil

import pytest
import torch

from imagefiles import SIZE
from pixclass import ImageData
from pixclass.errors import ImageReadError, PixclassError


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_training_on_cached_features_learns_the_colours(colour_data, make_learner):
    learn = make_learner(colour_data)
    assert learn.uses_cache

    rows = learn.fit_one_cycle(4, lr=1e-2)

    assert rows[-1]["accuracy"] >= 0.8  # chance is 1/3
    assert rows[-1]["valid_loss"] < rows[0]["train_loss"]


def test_frozen_training_leaves_the_body_untouched(colour_data, make_learner):
    learn = make_learner(colour_data)
    body = state_of(learn.model.body)

    learn.fit_one_cycle(1, lr=1e-2)

    after = learn.model.body.state_dict()
    assert all(torch.equal(body[k], after[k]) for k in body)  # weights and BatchNorm statistics


def test_history_has_one_row_per_epoch_with_loss_and_metrics(colour_data, make_learner):
    learn = make_learner(colour_data)

    learn.fit_one_cycle(2, lr=1e-2)

    rows = learn.recorder.rows
    assert [r["epoch"] for r in rows] == [0, 1]
    assert set(rows[0]) == {"epoch", "train_loss", "valid_loss", "error_rate", "accuracy", "time"}
    assert learn.recorder.to_csv().splitlines()[0] == "epoch,train_loss,valid_loss,error_rate,accuracy,time"


def test_unfrozen_training_updates_the_body(colour_data, make_learner):
    learn = make_learner(colour_data)
    learn.unfreeze()
    assert not learn.uses_cache
    body = state_of(learn.model.body)

    rows = learn.fit_one_cycle(1, lr=slice(1e-4, 1e-3))

    assert rows[0]["epoch"] == 0 and rows[0]["valid_loss"] == rows[0]["valid_loss"]  # not nan
    first_conv = next(k for k in body if k.endswith("weight"))
    assert not torch.equal(body[first_conv], learn.model.body.state_dict()[first_conv])


def test_get_preds_on_cached_features_equals_running_the_whole_model(colour_data, make_learner):
    learn = make_learner(colour_data)
    learn.fit_one_cycle(1, lr=1e-2)

    cached, y_cached = learn.get_preds("valid", cached=True)
    full, y_full = learn.get_preds("valid", cached=False)

    assert torch.allclose(cached, full, atol=1e-5)
    assert torch.equal(y_cached.cpu(), y_full)
    assert torch.allclose(full.sum(1), torch.ones(len(full)))  # softmax probabilities


def test_the_same_seed_repeats_a_run_exactly(colour_data, make_learner):
    def run() -> list[dict]:
        learn = make_learner(colour_data, seed=0)
        learn.fit_one_cycle(2, lr=1e-2)
        learn.unfreeze()
        learn.fit_one_cycle(1, lr=slice(1e-4, 1e-3))
        return [{k: v for k, v in r.items() if k != "time"} for r in learn.recorder.rows]

    assert run() == run()


def test_save_and_load_round_trip_the_weights(colour_data, make_learner):
    learn = make_learner(colour_data)
    learn.fit_one_cycle(1, lr=1e-2)
    path = learn.save("stage-1")
    fresh = make_learner(colour_data, seed=1)

    fresh.load("stage-1")

    assert path == learn.path / "checkpoints" / "stage-1.safetensors"
    saved, loaded = learn.model.state_dict(), fresh.model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert torch.equal(learn.get_preds()[0], fresh.get_preds()[0])


def test_loading_weights_of_another_model_is_an_error(colour_data, make_learner, planet_csv):
    learn = make_learner(colour_data)
    learn.save("three-classes")
    two = ImageData.from_lists(colour_data.train_paths, ["a", "b"] * 9, valid_pct=0.2, size=SIZE, num_workers=0)

    with pytest.raises(PixclassError, match="do not fit this model"):
        make_learner(two).load(learn.path / "checkpoints" / "three-classes.safetensors")


def test_multi_label_trains_end_to_end(planet_csv, make_learner):
    data = ImageData.from_csv(planet_csv, folder="train-jpg", suffix=".jpg", label_delim=" ", valid_pct=0.25,
                              size=SIZE, bs=6, num_workers=0)
    learn = make_learner(data)

    rows = learn.fit_one_cycle(4, lr=1e-2)

    assert set(learn.metrics) == {"accuracy_thresh", "fbeta"}
    assert rows[-1]["accuracy_thresh"] > 0.7
    probs, y = learn.get_preds()
    assert probs.shape == y.shape == (6, 3) and ((probs >= 0) & (probs <= 1)).all()


def test_regression_trains_end_to_end(regression_csv, make_learner):
    data = ImageData.from_csv(regression_csv, folder="images", valid_col="is_valid", size=SIZE, bs=4,
                              num_workers=0)
    learn = make_learner(data, ps=0.1, y_range=(0.0, 1.0))

    rows = learn.fit_one_cycle(8, lr=1e-2)

    assert set(learn.metrics) == {"mae", "rmse"}
    values, y = learn.get_preds()
    assert values.shape == y.shape == (4, 1)
    baseline = (y - y.mean()).abs().mean().item()  # always predicting the mean brightness
    assert rows[-1]["mae"] < 0.75 * baseline


def test_a_broken_image_stops_training_with_one_clear_line(imagenet_folders, broken_files, make_learner):
    bad = imagenet_folders / "train" / "green" / "green_bad.jpg"
    shutil.copy(broken_files["html"], bad)
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=6, num_workers=0)

    with pytest.raises(ImageReadError) as err:
        make_learner(data).fit_one_cycle(1)

    assert str(err.value).startswith(f"cannot read '{bad}': not an image (HTML page")
    assert "pixclass verify" in str(err.value) and "\n" not in str(err.value)


def test_a_broken_image_with_a_worker_process_is_the_same_one_line(imagenet_folders, broken_files, make_learner):
    bad = imagenet_folders / "train" / "green" / "green_bad.jpg"
    shutil.copy(broken_files["truncated"], bad)
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=6, num_workers=1)
    learn = make_learner(data)
    learn.unfreeze()

    with pytest.raises(ImageReadError, match=r"truncated file\. Run 'pixclass verify") as err:
        learn.fit_one_cycle(1)

    assert err.value.path == str(bad) and err.value.__context__ is None


def test_skip_bad_trains_on_the_readable_images(imagenet_folders, broken_files, make_learner):
    shutil.copy(broken_files["empty"], imagenet_folders / "train" / "green" / "green_bad.jpg")
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=6, num_workers=0, skip_bad=True)
    learn = make_learner(data)

    with pytest.warns(UserWarning, match="skipped .*green_bad.jpg.*empty file"):
        learn.fit_one_cycle(1, lr=1e-2)

    assert len(learn.features.get("train")[0]) == 18


def test_zero_epochs_is_an_error(colour_data, make_learner):
    with pytest.raises(PixclassError, match="epochs must be at least 1; got 0"):
        make_learner(colour_data).fit_one_cycle(0)


def test_skip_bad_survives_a_batch_left_with_one_image(imagenet_folders, broken_files, make_learner):
    # Batches of 2: the batch holding the broken file is left with one image, on which
    # BatchNorm cannot train; that batch is skipped rather than crashing the epoch.
    shutil.copy(broken_files["html"], imagenet_folders / "train" / "red" / "red_bad.jpg")
    shutil.copy(imagenet_folders / "train" / "red" / "red_0.jpg", imagenet_folders / "train" / "red" / "red_9.jpg")
    data = ImageData.from_folder(imagenet_folders, size=SIZE, bs=2, num_workers=0, skip_bad=True)
    assert len(data.train_paths) == 20
    learn = make_learner(data)
    learn.unfreeze()

    with pytest.warns(UserWarning, match="skipped .*red_bad.jpg"):
        rows = learn.fit_one_cycle(1, lr=1e-3)

    assert len(learn.recorder.lrs) == 9 and rows[0]["train_loss"] == rows[0]["train_loss"]
