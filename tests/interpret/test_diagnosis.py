"""`diagnose`: crafted histories and counts give exactly the findings they should, a healthy run none."""

from __future__ import annotations

import csv
import io

from pixclass.interpret.diagnosis import SEVERITIES, Finding, diagnose


def history(train: list[float], valid: list[float]) -> list[dict]:
    return [{"epoch": i, "train_loss": t, "valid_loss": v, "accuracy": 0.9, "time": 1.0}
            for i, (t, v) in enumerate(zip(train, valid))]


HEALTHY = history([1.2, 0.8, 0.6, 0.5, 0.49], [0.9, 0.7, 0.6, 0.55, 0.545])
BALANCED = {"cat": 100, "dog": 120, "fox": 90}


def kinds(findings: list[Finding]) -> list[str]:
    return sorted(f.kind for f in findings)


def test_a_healthy_run_has_no_findings():
    assert diagnose(HEALTHY, {"metrics": {"accuracy": 0.9}}, BALANCED, probe_accuracy=0.85, leak_pairs=0) == []


def test_a_healthy_history_read_from_csv_strings_has_no_findings():
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(HEALTHY[0]))
    writer.writeheader()
    writer.writerows(HEALTHY)
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))

    assert diagnose(rows) == []


def test_a_nan_loss_means_the_learning_rate_is_too_high():
    rows = list(csv.DictReader(io.StringIO("epoch,train_loss,valid_loss\n0,1.1,0.9\n1,nan,nan\n2,nan,nan\n")))

    found = diagnose(rows)

    assert kinds(found) == ["lr_too_high"]
    assert found[0].severity == "error"
    assert found[0].evidence["first_bad_epoch"] == 1


def test_a_training_loss_that_ends_far_above_its_start_means_the_learning_rate_is_too_high():
    found = diagnose(history([1.0, 1.4, 2.0, 2.6], [0.9, 1.5, 2.2, 2.5]))

    assert kinds(found) == ["lr_too_high"]
    assert found[0].evidence["ratio"] == 2.6


def test_a_run_without_validation_is_judged_on_its_training_loss_alone():
    rows = list(csv.DictReader(io.StringIO("epoch,train_loss,valid_loss\n0,2.0,nan\n1,0.61,nan\n2,0.43,nan\n")))
    exploded = list(csv.DictReader(io.StringIO("epoch,train_loss,valid_loss\n0,1.0,nan\n1,nan,nan\n")))

    assert diagnose(rows) == []
    assert kinds(diagnose(exploded)) == ["lr_too_high"]


def test_a_loss_that_barely_moves_means_the_learning_rate_is_too_low():
    found = diagnose(history([1.10, 1.09, 1.08, 1.075], [1.10, 1.095, 1.09, 1.088]))

    assert kinds(found) == ["lr_too_low"]
    assert "--lr" in found[0].message


def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    found = diagnose(history([1.0, 0.6, 0.4, 0.3, 0.29], [0.8, 0.5, 0.45, 0.5, 0.56]))

    assert kinds(found) == ["overfitting"]
    assert found[0].evidence["best_valid_loss"] == 0.45


def test_a_small_noisy_rise_of_the_validation_loss_is_not_overfitting():
    assert diagnose(history([1.0, 0.6, 0.45, 0.44, 0.435], [0.8, 0.5, 0.45, 0.451, 0.452])) == []


def test_training_loss_well_above_validation_loss_is_underfitting():
    found = diagnose(history([2.0, 1.6, 1.5, 1.49], [1.0, 0.9, 0.85, 0.84]))

    assert kinds(found) == ["underfitting"]


def test_both_losses_still_falling_fast_at_the_end_is_underfitting():
    found = diagnose(history([1.2, 1.0, 0.8, 0.6], [1.1, 0.95, 0.8, 0.65]))

    assert kinds(found) == ["underfitting"]
    assert "--epochs" in found[0].message


def test_trends_need_three_epochs():
    assert diagnose(history([1.2, 0.6], [1.1, 0.5])) == []


def test_a_largest_class_over_five_times_the_smallest_is_an_imbalance():
    found = diagnose(HEALTHY, class_counts={"cat": 300, "dog": 50, "fox": 59})

    assert kinds(found) == ["class_imbalance"]
    assert found[0].evidence == {"largest": "cat", "largest_count": 300, "smallest": "dog", "smallest_count": 50,
                                 "ratio": 6.0}
    assert "no weighted loss or sampler" in found[0].message


def test_classes_under_twenty_images_are_tiny():
    found = diagnose(HEALTHY, class_counts={"cat": 40, "dog": 19, "fox": 12})

    assert kinds(found) == ["tiny_classes"]
    assert found[0].evidence["classes"] == {"dog": 19, "fox": 12}
    assert "'fox' (12), 'dog' (19)" in found[0].message


def test_a_class_with_no_training_image_is_imbalanced_and_tiny():
    assert kinds(diagnose(HEALTHY, class_counts={"cat": 40, "dog": 0})) == ["class_imbalance", "tiny_classes"]


def test_train_valid_copies_are_leakage_and_come_first():
    found = diagnose(HEALTHY, class_counts={"cat": 40, "dog": 19}, leak_pairs=3)

    assert [f.kind for f in found] == ["leakage", "tiny_classes"]
    assert found[0].severity == "error"
    assert found[0].message.startswith("3 pictures are in both the training and the validation set")


def test_an_unknown_leak_count_finds_nothing():
    assert diagnose(HEALTHY, leak_pairs=None) == []


def test_a_final_accuracy_below_the_linear_probe_is_reported():
    found = diagnose(HEALTHY, {"metrics": {"accuracy": 0.80}}, probe_accuracy=0.85)

    assert kinds(found) == ["below_probe"]
    assert found[0].evidence["accuracy"] == 0.80


def test_an_accuracy_within_a_point_of_the_probe_is_not_reported():
    assert diagnose(HEALTHY, {"metrics": {"accuracy": 0.845}}, probe_accuracy=0.85) == []


def test_every_finding_has_a_known_severity_and_a_message_saying_what_to_do():
    found = diagnose(history([1.0, 1.4, 2.0, 2.6], [0.9, 1.5, 2.2, 2.5]), {"metrics": {"accuracy": 0.5}},
                     {"a": 1, "b": 30}, probe_accuracy=0.9, leak_pairs=1)

    assert kinds(found) == ["below_probe", "class_imbalance", "leakage", "lr_too_high", "tiny_classes"]
    assert all(f.severity in SEVERITIES and f.message.endswith(".") for f in found)
    assert [f.severity for f in found] == sorted((f.severity for f in found), key=SEVERITIES.index)
