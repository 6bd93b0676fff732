"""`Interpretation`: exact confusion matrices, pairs, losses and per-class scores from plain arrays,
one from a tiny trained Learner, and the plots as real PNG files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imagefiles import write_class_folders
from pixclass import Learner
from pixclass.errors import PixclassError
from pixclass.interpret import Interpretation

CLASSES = ["a", "b", "c"]
TARGETS = [0, 0, 0, 1, 1, 2, 2, 2]
# Predicted:  a    b    b    b    a    c    a    c   (each row's largest probability)
PROBS = [[.80, .10, .10], [.30, .60, .10], [.20, .50, .30], [.10, .85, .05],
         [.50, .40, .10], [.05, .05, .90], [.70, .10, .20], [.30, .10, .60]]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def single() -> Interpretation:
    return Interpretation(np.array(PROBS), np.array(TARGETS), CLASSES, "single")


def test_the_single_label_confusion_matrix_counts_actual_rows_against_predicted_columns(single):
    assert single.confusion_matrix().tolist() == [[1, 2, 0], [1, 1, 0], [1, 0, 2]]


def test_a_normalised_confusion_matrix_has_rows_summing_to_one(single):
    cm = single.confusion_matrix(normalize=True)

    assert cm == pytest.approx(np.array([[1 / 3, 2 / 3, 0], [1 / 2, 1 / 2, 0], [1 / 3, 0, 2 / 3]]))


def test_a_class_without_items_keeps_a_row_of_zeros_when_normalised():
    interp = Interpretation(np.array(PROBS)[:, [0, 1, 2, 2]] * [1, 1, 1, 0], TARGETS, CLASSES + ["d"], "single")

    cm = interp.confusion_matrix(normalize=True)

    assert cm[3].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert cm[:3].sum(1) == pytest.approx([1.0, 1.0, 1.0])
    assert interp.per_class()[3] == {"class": "d", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_most_confused_lists_wrong_pairs_most_frequent_first_then_by_name(single):
    assert single.most_confused() == [("a", "b", 2), ("b", "a", 1), ("c", "a", 1)]


def test_most_confused_leaves_out_pairs_seen_fewer_than_min_val_times(single):
    assert single.most_confused(min_val=2) == [("a", "b", 2)]
    assert single.most_confused(min_val=3) == []


def test_per_class_precision_recall_and_f1_match_the_hand_computed_values(single):
    rows = single.per_class()

    assert [r["class"] for r in rows] == CLASSES
    assert [r["support"] for r in rows] == [3, 2, 3]
    assert [r["precision"] for r in rows] == pytest.approx([1 / 3, 1 / 3, 1.0])
    assert [r["recall"] for r in rows] == pytest.approx([1 / 3, 1 / 2, 2 / 3])
    assert [r["f1"] for r in rows] == pytest.approx([1 / 3, 0.4, 0.8])


def test_single_label_losses_are_the_cross_entropy_of_the_actual_class(single):
    expected = [-math.log(PROBS[i][t]) for i, t in enumerate(TARGETS)]

    assert single.losses() == pytest.approx(expected)


def test_top_losses_come_highest_first_and_k_limits_them(single):
    # Probability of the actual class: .80 .30 .20 .85 .40 .90 .20 .60 (items 2 and 6 tie).
    assert [i for i, _ in single.top_losses()] == [2, 6, 1, 4, 7, 0, 3, 5]
    assert single.top_losses(2) == [(2, pytest.approx(-math.log(.2))), (6, pytest.approx(-math.log(.2)))]


def test_tensors_are_accepted_and_left_unchanged():
    probs, targets = torch.tensor(PROBS), torch.tensor(TARGETS)
    before = probs.clone()

    interp = Interpretation(probs, targets, CLASSES, "single")
    interp.probs[:] = 0

    assert torch.equal(probs, before)
    assert Interpretation(torch.tensor(PROBS), targets, CLASSES, "single").confusion_matrix()[0, 1] == 2


def test_inputs_of_the_wrong_shape_are_refused_with_the_shapes_named():
    with pytest.raises(PixclassError, match=r"probs \(8, 3\) and targets \(7,\) should be \(8, 3\) and \(8,\)"):
        Interpretation(PROBS, TARGETS[:7], CLASSES, "single")


MULTI_TARGETS = [[1, 0], [1, 1], [0, 1], [0, 0]]
MULTI_PROBS = [[.9, .2], [.4, .8], [.6, .7], [.1, .1]]


def test_multi_label_confusion_matrices_are_per_tag_tn_fp_fn_tp():
    interp = Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi")

    assert interp.confusion_matrix().tolist() == [[[1, 1], [1, 1]], [[2, 0], [0, 2]]]
    assert interp.confusion_matrix(normalize=True).tolist() == [[[.5, .5], [.5, .5]], [[1, 0], [0, 1]]]


def test_the_multi_label_threshold_decides_which_tags_are_predicted():
    interp = Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi", threshold=0.65)

    assert interp.confusion_matrix()[0].tolist() == [[2, 0], [1, 1]]
    assert interp.per_class()[0] == {"class": "x", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                     "support": 2}


def test_multi_label_losses_are_the_mean_binary_cross_entropy_over_tags():
    interp = Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi")

    assert interp.losses()[0] == pytest.approx(-(math.log(.9) + math.log(.8)) / 2)
    assert interp.losses()[2] == pytest.approx(-(math.log(.4) + math.log(.7)) / 2)


def test_most_confused_is_refused_for_multi_label_with_the_reason():
    interp = Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi")

    with pytest.raises(PixclassError, match="most_confused needs a single task; this interpretation is multi"):
        interp.most_confused()


def test_regression_losses_are_squared_errors_and_rank_the_top_losses():
    interp = Interpretation([[1.0], [2.0], [4.0]], [1.5, 2.0, 1.0], [], "regression")

    assert interp.losses().tolist() == [0.25, 0.0, 9.0]
    assert interp.top_losses() == [(2, 9.0), (0, 0.25), (1, 0.0)]
    with pytest.raises(PixclassError, match="a confusion matrix needs a single or multi task"):
        interp.confusion_matrix()


def test_the_plots_write_png_files(tmp_path, single):
    paths = write_class_folders(tmp_path / "imgs", n_per_class=3)
    files = sorted(paths.rglob("*.*"))[:8]
    interp = Interpretation(PROBS, TARGETS, CLASSES, "single", paths=files)
    multi = Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi", paths=files[:4])
    regression = Interpretation([1.0, 2.0, 4.0], [1.5, 2.0, 1.0], [], "regression", paths=files[:3])

    outputs = {
        "cm.png": interp.plot_confusion_matrix,
        "top.png": lambda p: interp.plot_top_losses(4, p),
        "multi_cm.png": multi.plot_confusion_matrix,
        "multi_top.png": lambda p: multi.plot_top_losses(path=p),
        "residuals.png": regression.plot_residuals,
        "regression_top.png": lambda p: regression.plot_top_losses(path=p),
    }
    for name, plot in outputs.items():
        fig = plot(tmp_path / "out" / name)
        assert fig is not None
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG, name
    titles = [ax.get_title() for ax in interp.plot_top_losses(2).axes]
    assert titles == ["a/b/1.61/0.20", "c/a/1.61/0.20"]


@pytest.fixture(scope="module")
def learn(colour_learner) -> Learner:
    return colour_learner  # the session's tiny trained learner (tests/conftest.py)


def test_from_learner_interprets_the_validation_predictions(learn, tmp_path):
    probs, y = learn.get_preds("valid")

    interp = Interpretation.from_learner(learn)

    assert interp.classes == ["blue", "green", "red"]
    assert interp.paths == learn.data.valid_paths
    cm = interp.confusion_matrix()
    assert cm.sum() == len(learn.data.valid_paths)
    assert np.trace(cm) / cm.sum() == pytest.approx(learn.validate()["accuracy"], abs=1e-12)
    assert interp.losses() == pytest.approx((-probs[torch.arange(len(y)), y].log()).numpy(), abs=1e-6)
    interp.plot_top_losses(4, tmp_path / "top.png")
    assert (tmp_path / "top.png").read_bytes()[:8] == PNG


def test_learn_interpret_is_the_interpretation_from_the_learner(learn):
    interp = learn.interpret()

    assert interp.confusion_matrix().tolist() == Interpretation.from_learner(learn).confusion_matrix().tolist()
    assert interp.top_losses() == Interpretation.from_learner(learn).top_losses()


def test_per_tag_thresholds_decide_each_tag_with_its_own_number():
    interp = Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi", threshold=[0.65, 0.75])

    assert interp.preds.tolist() == [[1, 0], [0, 1], [0, 0], [0, 0]]


def test_a_threshold_list_of_the_wrong_length_is_refused_naming_the_count():
    with pytest.raises(PixclassError, match="one number or 2 numbers, each between 0 and 1"):
        Interpretation(MULTI_PROBS, MULTI_TARGETS, ["x", "y"], "multi", threshold=[0.5, 0.5, 0.5])


def test_tuned_thresholds_separate_each_tag_and_prefer_the_one_nearest_a_half():
    # x: positives 0.3/0.4, negatives 0.1/0.2 -> any t in [0.20, 0.29] is perfect; 0.29 is nearest 0.5.
    # y: positives 0.9/0.8, negatives 0.6/0.7 -> any t in [0.70, 0.79] is perfect; 0.70 is nearest 0.5.
    probs = [[.3, .6], [.4, .7], [.1, .9], [.2, .8]]
    targets = [[1, 0], [1, 0], [0, 1], [0, 1]]
    interp = Interpretation(probs, targets, ["x", "y"], "multi")

    tuned = interp.tune_thresholds()

    assert tuned == [0.29, 0.70]
    assert Interpretation(probs, targets, ["x", "y"], "multi", threshold=tuned).per_class()[0]["f1"] == 1.0
    assert interp.threshold == 0.5  # tuning returns numbers; it changes nothing


def test_threshold_tuning_is_refused_for_single_label_with_the_reason(single):
    with pytest.raises(PixclassError, match="threshold tuning needs a multi task"):
        single.tune_thresholds()
