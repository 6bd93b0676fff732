"""What a finished run's numbers say went wrong, in plain words: `diagnose(...) -> list[Finding]`.

Owns the rules and their thresholds: learning rate too high or too low, over-fitting,
under-fitting (too few epochs), class imbalance, tiny classes, train/valid leakage, and a final
accuracy below the linear probe. Inputs are plain values (history rows as `history.csv` reads,
the `summary.json` dict, per-class training counts, the probe's accuracy, the leak count), so a
rule can be checked on a crafted history without training anything. Each threshold is a named
constant saying why it has its value; none was tuned on a benchmark, they are judgement calls
chosen to stay quiet on ordinary runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

# Severities, most serious first: "error" = the numbers cannot be trusted as they are,
# "warning" = the run can clearly be improved, "info" = worth knowing.
SEVERITIES = ("error", "warning", "info")

# A training loss that ends above 1.5x its first epoch's went up, not down: with one-cycle the
# first epoch already averages a rising LR, so a healthy run ends well below it; noise between
# epochs is a few per cent, never 50 %.
LOSS_EXPLODED_RATIO = 1.5
# "Barely moved": the training loss fell by less than 5 % of its first epoch's value over the
# whole run. A run that learns anything drops by far more (the tiny test runs: 70-75 %).
BARELY_MOVED = 0.05
# Trends need this many epochs: with two, one noisy epoch decides.
MIN_EPOCHS_FOR_TREND = 3
# Over-fitting: validation loss rose at each of the last 2 epochs (3 rows)...
OVERFIT_RISING_EPOCHS = 2
# ...and ends at least 2 % above its best: smaller rises are noise on a few hundred images.
OVERFIT_MIN_RISE = 0.02
# Under-fitting: training loss 1.5x the validation loss. Augmentation, dropout and label
# smoothing keep a healthy run's training loss around 1.0-1.3x the validation loss, so only a
# clear gap counts.
UNDERFIT_RATIO = 1.5
# "Still falling fast": both losses dropped more than 5 % in the last epoch. One-cycle anneals
# the LR to ~0 at the end, so a converged run moves by a per cent or two there.
STILL_FALLING = 0.05
# Imbalance: the largest class has 5x the images of the smallest. Mild skews (2-3x) rarely
# matter; from about 5x the small class's recall is worth checking.
IMBALANCE_RATIO = 5.0
# A class with fewer than 20 training images: with a 20 % validation share it has about 5
# validation images, so its recall moves in 20-point steps and says little.
MIN_CLASS_IMAGES = 20
# The trained model should at least match a linear model on the frozen features; a shortfall
# under 1 point is noise on a few hundred validation images.
PROBE_MARGIN = 0.01


@dataclass(frozen=True)
class Finding:
    """One thing the numbers say: what kind, how serious, in words, and the numbers behind it.

    Args:
        kind: a stable name ("lr_too_high", "lr_too_low", "overfitting", "underfitting",
            "class_imbalance", "tiny_classes", "leakage", "below_probe").
        severity: "error", "warning" or "info" (`SEVERITIES`).
        message: one sentence of what is wrong, then what to do.
        evidence: the numbers the rule saw.
    """

    kind: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def diagnose(history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any] | None = None,
             class_counts: Mapping[str, int] | None = None, probe_accuracy: float | None = None,
             leak_pairs: int | None = None) -> list[Finding]:
    """The findings of one run, most serious first (none for a healthy run).

    Args:
        history: one row per epoch with `train_loss` and `valid_loss` (numbers or the strings
            `csv.DictReader` gives; "nan" is a number that is not finite). A run without a
            validation set ("nan" in every row) is judged on its training loss alone.
        summary: the run's `summary.json` (its "metrics" give the final accuracy).
        class_counts: training images per class (per tag for multi-label); empty for regression.
        probe_accuracy: the linear probe's validation accuracy, or None when there was none.
        leak_pairs: how many train/valid pairs are copies of each other, or None when unknown.
    """
    train, valid = _column(history, "train_loss"), _column(history, "valid_loss")
    if not any(math.isfinite(v) for v in valid):  # no validation set: "nan" in every row
        found = _lr_findings(train, None)
    else:
        found = _lr_findings(train, valid) + _fit_findings(train, valid)
    found += _class_findings(dict(class_counts or {}))
    found += _leak_findings(leak_pairs) + _probe_findings(summary or {}, probe_accuracy)
    return sorted(found, key=lambda f: SEVERITIES.index(f.severity))


def _column(history: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    out = []
    for row in history:
        try:
            out.append(float(row.get(key, "nan")))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _lr_findings(train: list[float], valid: list[float] | None) -> list[Finding]:
    """`valid` is None for a run without a validation set."""
    if not train:
        return []
    losses = list(zip(train, valid if valid is not None else train))
    bad = [i for i, (t, v) in enumerate(losses) if not (math.isfinite(t) and math.isfinite(v))]
    if bad:
        return [Finding("lr_too_high", "error",
                        f"The loss became NaN or infinite at epoch {bad[0]}: the learning rate is far too high. "
                        "Train again with a lower --lr (a tenth of this one) and check the lr_find plot.",
                        {"first_bad_epoch": bad[0], "train_loss": train[bad[0]],
                         "valid_loss": None if valid is None else valid[bad[0]]})]
    first, last = train[0], train[-1]
    if len(train) > 1 and last > LOSS_EXPLODED_RATIO * first:
        return [Finding("lr_too_high", "error",
                        f"The training loss ended at {last:.3g}, above its first epoch's {first:.3g}: the learning "
                        "rate is too high. Train again with a lower --lr (try a third of it).",
                        {"first_train_loss": first, "last_train_loss": last, "ratio": last / first})]
    drop = (first - min(train)) / first if first > 0 else 0.0
    if len(train) >= MIN_EPOCHS_FOR_TREND and drop < BARELY_MOVED:
        return [Finding("lr_too_low", "warning",
                        f"The training loss barely moved ({drop:.1%} below its first epoch's {first:.3g}): the "
                        "learning rate is probably too low. Use lr_find's suggestion (--lr auto) or a higher --lr.",
                        {"first_train_loss": first, "min_train_loss": min(train), "relative_drop": drop})]
    return []


def _fit_findings(train: list[float], valid: list[float]) -> list[Finding]:
    if len(train) < MIN_EPOCHS_FOR_TREND or not all(math.isfinite(x) for x in train + valid):
        return []
    out = []
    tail_v, tail_t = valid[-(OVERFIT_RISING_EPOCHS + 1):], train[-(OVERFIT_RISING_EPOCHS + 1):]
    rising = all(b > a for a, b in pairwise(tail_v))
    best = min(valid)
    if rising and tail_t[-1] < tail_t[0] and valid[-1] > best * (1 + OVERFIT_MIN_RISE):
        out.append(Finding("overfitting", "warning",
                           f"The validation loss rose for the last {OVERFIT_RISING_EPOCHS} epochs (to {valid[-1]:.3g}, "
                           f"best {best:.3g}) while the training loss kept falling: the model is over-fitting. "
                           "Train fewer epochs, add augmentation, or collect more images.",
                           {"valid_loss_tail": tail_v, "train_loss_tail": tail_t, "best_valid_loss": best}))
    t_last, v_last, t_prev, v_prev = train[-1], valid[-1], train[-2], valid[-2]
    gap = t_last > UNDERFIT_RATIO * v_last
    falling = (t_prev - t_last) > STILL_FALLING * t_prev and (v_prev - v_last) > STILL_FALLING * v_prev
    if gap or falling:
        why = (f"the training loss ({t_last:.3g}) is still well above the validation loss ({v_last:.3g})" if gap else
               f"both losses still fell by more than {STILL_FALLING:.0%} in the last epoch")
        out.append(Finding("underfitting", "warning",
                           f"The model is under-fitting: {why}. Train more epochs (--epochs) or with a higher --lr.",
                           {"last_train_loss": t_last, "last_valid_loss": v_last, "prev_train_loss": t_prev,
                            "prev_valid_loss": v_prev}))
    return out


def _class_findings(counts: dict[str, int]) -> list[Finding]:
    if not counts:
        return []
    out = []
    big, small = max(counts, key=counts.get), min(counts, key=counts.get)
    if counts[small] == 0 or counts[big] / counts[small] > IMBALANCE_RATIO:
        ratio = counts[big] / counts[small] if counts[small] else math.inf
        out.append(Finding("class_imbalance", "warning",
                           f"The classes are imbalanced: '{big}' has {counts[big]} training images, '{small}' only "
                           f"{counts[small]}. pixclass has no weighted loss or sampler option, so collect more "
                           f"images of the small classes (or fewer of the large ones) and check their recall.",
                           {"largest": big, "largest_count": counts[big], "smallest": small,
                            "smallest_count": counts[small], "ratio": ratio}))
    tiny = {c: n for c, n in counts.items() if n < MIN_CLASS_IMAGES}
    if tiny:
        names = ", ".join(f"'{c}' ({n})" for c, n in sorted(tiny.items(), key=lambda kv: (kv[1], kv[0])))
        out.append(Finding("tiny_classes", "warning",
                           f"Some classes have fewer than {MIN_CLASS_IMAGES} training images: {names}. Their "
                           "results rest on a handful of images; collect more of them.",
                           {"classes": tiny, "min_class_images": MIN_CLASS_IMAGES}))
    return out


def _leak_findings(leak_pairs: int | None) -> list[Finding]:
    if not leak_pairs:
        return []
    return [Finding("leakage", "error",
                    f"{leak_pairs} picture{'s are' if leak_pairs > 1 else ' is'} in both the training and the "
                    "validation set (copies): the validation metrics are too optimistic. Remove one image of each "
                    "pair (listed by 'pixclass dupes') and train again.",
                    {"leak_pairs": leak_pairs})]


def _probe_findings(summary: Mapping[str, Any], probe: float | None) -> list[Finding]:
    acc = (summary.get("metrics") or {}).get("accuracy")
    if probe is None or acc is None or not acc + PROBE_MARGIN < probe:
        return []
    return [Finding("below_probe", "warning",
                    f"The final accuracy ({acc:.1%}) is below a linear model on the frozen features "
                    f"({probe:.1%}): training did worse than the simplest baseline. Try fewer unfrozen epochs "
                    "(--unfreeze-epochs 0), a lower --lr, or more frozen epochs.",
                    {"accuracy": acc, "linear_probe_accuracy": probe, "margin": PROBE_MARGIN})]
