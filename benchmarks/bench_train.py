"""Benchmark: the default recipe on the elpv split (the demo), and prediction speed of its bundle.

Runs `pixclass demo` as a separate process (start-up, feature caching, lr_find, training,
export, predictions: the whole command) and measures its wall time, peak memory and the
validation accuracy it reports; then times `load_model(...).predict` on single images and
`predict_many` in batches, first as a library user gets them, then after `keep_freed_memory()`
as the `pixclass` command runs them. Writes `benchmarks/results/train-<task>.json` and prints
a table beside fastai's reference figures measured on a 2-core machine like this one
(`shared/data/README.md`: fastai 2.8.12, same backbone, weights and split).

    .venv/bin/python benchmarks/bench_train.py [--task type|defect] [--unfreeze-epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# fastai 2.8.12 on the same split (shared/data/README.md); reference figures, not measured here.
FASTAI = {
    "type": {"accuracy": 0.9962, "wall_s": 17.5 * 60, "predict_ms": 27.0, "batch_img_s": 52.0, "rss_gb": 4.3},
    "defect": {"accuracy": 0.7105, "wall_s": 189 + 134 + 3 * 206, "predict_ms": 29.0, "batch_img_s": 39.0,
               "rss_gb": 4.3},
}


def run_demo(task: str, unfreeze_epochs: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "pixclass", "demo", "--task", task, "--out", str(out),
           "--unfreeze-epochs", str(unfreeze_epochs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench: demo failed:\n{proc.stderr}")
    summary = json.loads((out / "summary.json").read_text())
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": round(wall, 1), "accuracy": summary["metrics"].get("accuracy"),
            "linear_probe_accuracy": summary.get("linear_probe_accuracy"), "kept": summary.get("kept"),
            "peak_rss_gb": round(peak_kb / 1e6, 2), "model_mb": round((out / "model.pixclass").stat().st_size / 1e6, 1),
            "demo_output": proc.stdout.splitlines()[-12:]}


def time_predict(model_path: Path, task: str) -> dict:
    """Prediction speed as a library user gets it, then as the `pixclass` command does."""
    import torch

    from pixclass.demo.elpv import elpv_items, elpv_split
    from pixclass.export.predictor import load_model
    from pixclass.malloc import keep_freed_memory

    torch.set_num_threads(2)
    model = load_model(model_path)
    paths, _ = elpv_items(task)
    valid = [paths[i] for i in elpv_split()["valid_idx"]]
    result = {}
    for setting in ("", "_cli"):  # glibc settings can't be undone in-process: default first
        if setting:
            keep_freed_memory()
        for p in valid[:3]:
            model.predict(p)  # warm-up
        single = []
        for p in valid[:50]:
            t0 = time.perf_counter()
            model.predict(p)
            single.append((time.perf_counter() - t0) * 1000)
        rates = []
        for _ in range(3):  # median of 3 passes at the default batch size
            t0 = time.perf_counter()
            n = sum(1 for _ in model.predict_many(valid[:256]))
            rates.append(n / (time.perf_counter() - t0))
        result[f"predict_median_ms{setting}"] = round(statistics.median(single), 1)
        result[f"predict_many_img_s{setting}"] = round(statistics.median(rates), 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="type", choices=["type", "defect"])
    ap.add_argument("--unfreeze-epochs", type=int, default=0)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        result = {"task": args.task, "unfreeze_epochs": args.unfreeze_epochs, "load_avg_at_start": load,
                  **run_demo(args.task, args.unfreeze_epochs, out), **time_predict(out / "model.pixclass", args.task)}
    ref = FASTAI[args.task]
    result["fastai_reference"] = ref
    result["speedup_wall_vs_fastai"] = round(ref["wall_s"] / result["wall_s"], 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"train-{args.task}.json").write_text(json.dumps(result, indent=1))
    rows = [("valid accuracy", f"{result['accuracy']:.4f}", f"{ref['accuracy']:.4f}"),
            ("linear probe accuracy", f"{result['linear_probe_accuracy']:.4f}", "-"),
            ("whole run, wall s", f"{result['wall_s']:.0f}", f"{ref['wall_s']:.0f}"),
            ("predict one image, ms", f"{result['predict_median_ms']}", f"{ref['predict_ms']}"),
            ("  as the CLI runs it", f"{result['predict_median_ms_cli']}", ""),
            ("predict in batches, img/s", f"{result['predict_many_img_s']}", f"{ref['batch_img_s']}"),
            ("  as the CLI runs it", f"{result['predict_many_img_s_cli']}", ""),
            ("peak RSS, GB", f"{result['peak_rss_gb']}", f"{ref['rss_gb']}"),
            ("model file, MB", f"{result['model_mb']}", "19.2 (pickle)")]
    print(f"{'elpv ' + args.task:<28}{'pixclass':>12}{'fastai ref':>14}")
    for name, ours, theirs in rows:
        print(f"{name:<28}{ours:>12}{theirs:>14}")
    print(f"(load average at start {load:.2f}; JSON: {RESULTS / f'train-{args.task}.json'})")


if __name__ == "__main__":
    main()
