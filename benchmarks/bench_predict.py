"""Benchmark: prediction speed of pixclass against fastai v2 on the same model, in the same run.

The model: efficientnet_lite0 (timm `tf_efficientnet_lite0`) with pixclass's head, trained for
two frozen epochs on elpv:type (weights do not change timings). fastai gets *the same
architecture and weights*: `vision_learner(dls, arch, pretrained=False)` builds fastai's own timm
body and `create_head`, whose layers match pixclass's head one for one (fastai concatenates max
then average pooling, pixclass average then max: the first BatchNorm and Linear are permuted to
match; fastai's last Linear has no bias, pixclass's has one, so it gets one). The learner is
`learn.export()`ed and timed after `load_learner`, as fastai users deploy it; both libraries'
labels are compared image by image as a check that they run the same model.

The images: the 525 elpv validation photos written once as JPEG files (`results/predict-images/`).
Every measurement runs in a fresh process (allocator state never leaks between them), one at a
time, 2 threads, input size 224:
- fastai (its own venv, `fastai_venv.py`): `learn.predict(path)` median ms over 50 images after
  warm-up; `learn.get_preds(dl=learn.dls.test_dl(files))` img/s over 256 images (median of passes);
- pixclass `load_model(bundle)` (runtime auto, and runtime torch): `predict(path)` and
  `predict_many(files)` at the default batch, the same way; each in a plain process (a library
  user) and after `pixclass.malloc.keep_freed_memory()` (what the CLI does);
- bare forward passes on random input, no data loading: torch fp32 channels_last, torch bf16
  autocast channels_last, ONNX Runtime fp32 (the `.onnx` that pixclass exports), batch 1 (ms)
  and 8 and 32 (img/s), both malloc settings.
Writes `results/predict.json` and `results/predict.md` and prints the targets (pass/fail; the
script never asserts). Measurements are interleaved over `--repeat` rounds; medians are reported.

    .venv/bin/python benchmarks/bench_predict.py [--model M.pixclass] [--repeat 2] [--no-fastai]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
IMAGES = RESULTS / "predict-images"
sys.path.insert(0, str(HERE))
from fastai_venv import FASTAI_PYTHON, ensure_fastai, fastai_version  # noqa: E402

N_SINGLE, N_BATCH = 50, 256
BARE_BATCHES = (1, 8, 32)
BARE_KINDS = ("torch_fp32_cl", "torch_bf16_cl", "ort_fp32")
TARGETS = {"predict_vs_fastai": 3.0, "batch_vs_fastai": 2.0, "batch_vs_bare": 0.9,
           "batch_vs_bare_fp32": 0.9}  # the last: against fp32 forwards only, for information

# Run in the fastai venv: the same architecture and weights as the pixclass bundle, exported.
FASTAI_BUILD = r"""
import json, sys
import pandas as pd, torch
from torch import nn
from safetensors import safe_open
from safetensors.torch import load_file
from fastai.vision.all import (CategoryBlock, ImageDataLoaders, Normalize, Resize, aug_transforms,
                               vision_learner)
bundle, items_json, out = sys.argv[1:4]
meta = json.loads(safe_open(bundle, "pt").metadata()["pixclass"])
head = meta["head"]
items = json.loads(open(items_json).read())
df = pd.DataFrame({"fname": [p for p, _ in items], "label": [l for _, l in items]})
dls = ImageDataLoaders.from_df(df, path="/", fn_col=0, label_col=1, valid_pct=0.2, seed=42, bs=32,
                               y_block=CategoryBlock(vocab=meta["classes"]),
                               item_tfms=Resize(meta["input_size"]),
                               batch_tfms=[*aug_transforms(), Normalize.from_stats(meta["mean"], meta["std"])])
learn = vision_learner(dls, meta["arch"], pretrained=False, normalize=False, n_out=head["n_out"],
                       lin_ftrs=[head["hidden"]], ps=head["ps"], concat_pool=head["concat_pool"])
last = learn.model[1][-1]
learn.model[1][-1] = nn.Linear(last.in_features, last.out_features, bias=True)  # pixclass's has a bias
src, state = load_file(bundle), {}
nf = head["n_in"]
swap = lambda t, dim: torch.cat([t.narrow(dim, nf, nf), t.narrow(dim, 0, nf)], dim)  # (avg, max) -> (max, avg)
for k, v in src.items():
    if k.startswith("body."):
        state["0.model." + k[5:]] = v
    else:  # head.mlp.K.param -> 1.(K+2).param (fastai's head starts with pool and flatten)
        _, _, idx, param = k.split(".", 3)
        if idx == "0" and v.ndim == 1:
            v = swap(v, 0)
        if idx == "2":
            v = swap(v, 1)
        state[f"1.{int(idx) + 2}.{param}"] = v
learn.model.load_state_dict(state, strict=True)
learn.export(out)
print(json.dumps({"vocab": list(learn.dls.vocab)}))
"""

FASTAI_TIME = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads(2)
from fastai.vision.all import load_learner
export, files_json, n_single, n_batch, passes = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
files = json.loads(open(files_json).read())
t0 = time.perf_counter()
learn = load_learner(export)
load_s = time.perf_counter() - t0
single, labels, rates = [], [], []
with learn.no_bar():  # no progress bar output: fastai's timings without printing
    for f in files[:3]:
        learn.predict(f)
    for f in files[:n_single]:
        t0 = time.perf_counter()
        label, _, probs = learn.predict(f)
        single.append((time.perf_counter() - t0) * 1000)
        labels.append(str(label))
    learn.get_preds(dl=learn.dls.test_dl(files[:32]))
    for _ in range(passes):
        t0 = time.perf_counter()
        probs, _ = learn.get_preds(dl=learn.dls.test_dl(files[:n_batch]))
        rates.append(len(probs) / (time.perf_counter() - t0))
print("\n" + json.dumps({"load_s": load_s, "predict_ms": statistics.median(single),
                  "batch_img_s": statistics.median(rates), "labels": labels,
                  "batch_labels": [learn.dls.vocab[i] for i in probs.argmax(1).tolist()]}))
"""

PIXCLASS_TIME = r"""
import json, statistics, sys, time
model_path, runtime, malloc, files_json = sys.argv[1:5]
n_single, n_batch, passes = map(int, sys.argv[5:8])
if malloc == "keep":
    from pixclass.malloc import keep_freed_memory
    keep_freed_memory()
from pixclass.export.predictor import load_model
files = json.loads(open(files_json).read())
t0 = time.perf_counter()
try:
    model = load_model(model_path, runtime=runtime, threads=2)
except TypeError:  # the Predictor before runtimes: torch only
    import torch
    torch.set_num_threads(2)
    model = load_model(model_path)
load_s = time.perf_counter() - t0
for f in files[:3]:
    model.predict(f)
single, labels = [], []
for f in files[:n_single]:
    t0 = time.perf_counter()
    p = model.predict(f)
    single.append((time.perf_counter() - t0) * 1000)
    labels.append(p.label)
list(model.predict_many(files[:32]))
rates = []
for _ in range(passes):
    t0 = time.perf_counter()
    out = list(model.predict_many(files[:n_batch]))
    rates.append(len(out) / (time.perf_counter() - t0))
print("\n" + json.dumps({"load_s": load_s, "runtime": getattr(model, "runtime", "torch"),
                  "default_bs": model.default_batch_size() if hasattr(model, "default_batch_size") else 8,
                  "predict_ms": statistics.median(single), "batch_img_s": statistics.median(rates),
                  "labels": labels, "batch_labels": [p.label for _, p, _ in out]}))
"""

BARE_TIME = r"""
import json, statistics, sys, time
model_path, onnx_path, kind, malloc = sys.argv[1:5]
batches = [int(b) for b in sys.argv[5].split(",")]
if malloc == "keep":
    from pixclass.malloc import keep_freed_memory
    keep_freed_memory()
import numpy as np
size = 224
if kind.startswith("torch"):
    import contextlib, torch
    torch.set_num_threads(2)
    from pixclass.export.bundle import load_bundle
    model, meta = load_bundle(model_path)
    size = meta["input_size"]
    model = model.eval().to(memory_format=torch.channels_last)
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if "bf16" in kind else contextlib.nullcontext
    def make(b):
        return torch.randn(b, 3, size, size).contiguous(memory_format=torch.channels_last)
    def run(x):
        with torch.inference_mode(), amp():
            return model(x).float()
else:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    def make(b):
        return np.random.default_rng(0).standard_normal((b, 3, size, size), dtype=np.float32)
    def run(x):
        return sess.run(None, {name: x})
result = {}
for b in batches:
    x = make(b)
    for _ in range(3):
        run(x)
    times = []
    for _ in range(50 if b == 1 else max(5, 64 // b)):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    result[f"b{b}_ms"] = med * 1000
    result[f"b{b}_img_s"] = b / med
print(json.dumps(result))
"""

# Used only when `pixclass export RUN --onnx` is not available: the same graph, batch axis dynamic.
ONNX_FALLBACK = r"""
import sys, torch
from pixclass.export.bundle import load_bundle
model, meta = load_bundle(sys.argv[1])
x = torch.zeros(1, 3, meta["input_size"], meta["input_size"])
torch.onnx.export(model.eval(), (x,), sys.argv[2], input_names=["image"], output_names=["logits"],
                  dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=18, dynamo=False)
"""


def wait_for_quiet(threshold: float, max_wait_s: float) -> dict:
    """Wait (at most `max_wait_s`) until the 1-minute load average is at most `threshold`.

    These are 2-core timings: other work on the machine shows up in every figure.
    """
    t0 = time.monotonic()
    while os.getloadavg()[0] > threshold and time.monotonic() - t0 < max_wait_s:
        time.sleep(10)
    return {"waited_s": round(time.monotonic() - t0), "load_average": os.getloadavg()}


def run_json(cmd: list[str], timeout: float = 1800) -> dict:
    """Run a measurement process; its last stdout line is a JSON object."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare_images() -> list[tuple[str, str]]:
    """The elpv validation photos as JPEG files, written once; (path, label) in split order."""
    from PIL import Image

    from pixclass.demo.elpv import elpv_items, elpv_split

    listing = IMAGES / "items.json"
    if listing.exists():
        return [tuple(x) for x in json.loads(listing.read_text())]
    IMAGES.mkdir(parents=True, exist_ok=True)
    paths, labels = elpv_items("type")
    items = []
    for i in elpv_split()["valid_idx"]:
        out = IMAGES / f"{labels[i]}_{i:04d}.jpg"
        Image.open(paths[i]).convert("RGB").save(out, "JPEG", quality=90)
        items.append((str(out), labels[i]))
    listing.write_text(json.dumps(items))
    return items


def ensure_model(path: Path | None) -> Path:
    """The bundle to time: `--model`, else a 2-epoch elpv:type run kept in results/."""
    if path:
        return path
    run = RESULTS / "predict-run"
    model = run / "model.pixclass"
    if not model.exists():
        subprocess.run([sys.executable, "-m", "pixclass", "train", "elpv:type", "--epochs", "2",
                        "--unfreeze-epochs", "0", "--out", str(run), "--overwrite"], check=True, timeout=1800)
    return model


def ensure_onnx(model: Path) -> tuple[Path, str]:
    """The model as ONNX: pixclass's own export when the CLI has it, else torch.onnx.export."""
    run = model.parent
    onnx = sorted(run.glob("*.onnx"))
    if onnx:
        return onnx[0], "pixclass export --onnx"
    proc = subprocess.run([sys.executable, "-m", "pixclass", "export", str(run), "--onnx"],
                          capture_output=True, text=True, timeout=1800)
    onnx = sorted(run.glob("*.onnx"))
    if proc.returncode == 0 and onnx:
        return onnx[0], "pixclass export --onnx"
    out = run / "fallback.onnx"
    subprocess.run([sys.executable, "-c", ONNX_FALLBACK, str(model), str(out)], check=True,
                   capture_output=True, timeout=1800)
    return out, "torch.onnx.export (pixclass export --onnx not available)"


def measure(args: argparse.Namespace, model: Path, onnx: Path, files_json: Path, with_fastai: bool) -> dict:
    """All measurements, each in its own process, interleaved over `args.repeat` rounds."""
    counts = [str(args.n_single), str(args.n_batch), str(args.passes)]
    commands: dict[str, list[str]] = {}
    if with_fastai:
        commands["fastai"] = [str(FASTAI_PYTHON), "-c", FASTAI_TIME, str(RESULTS / "predict-fastai.pkl"),
                              str(files_json), *counts]
    for runtime in ("auto", "torch"):
        for malloc in ("plain", "keep"):
            commands[f"pixclass_{runtime}_{malloc}"] = [sys.executable, "-c", PIXCLASS_TIME, str(model), runtime,
                                                        malloc, str(files_json), *counts]
    for kind in BARE_KINDS:
        for malloc in ("plain", "keep"):
            commands[f"bare_{kind}_{malloc}"] = [sys.executable, "-c", BARE_TIME, str(model), str(onnx), kind,
                                                 malloc, ",".join(map(str, BARE_BATCHES))]
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for r in range(args.repeat):
        for name, cmd in commands.items():
            print(f"round {r + 1}/{args.repeat}: {name}", flush=True)
            runs[name].append(run_json(cmd))
    result = {}
    for name, rs in runs.items():
        merged = {k: (statistics.median(x[k] for x in rs) if isinstance(v, (int, float)) else v)
                  for k, v in rs[-1].items()}
        result[name] = merged
    return result


def summarize(m: dict, with_fastai: bool) -> dict:
    """Ratios against the issue's targets, for the library setting (a plain process) and the CLI's."""
    bare = {f"{kind}_{malloc}_b{b}": m[f"bare_{kind}_{malloc}"][f"b{b}_img_s"]
            for kind in BARE_KINDS for malloc in ("plain", "keep") for b in BARE_BATCHES if b > 1}
    best_name = max(bare, key=bare.get)
    fp32 = {k: v for k, v in bare.items() if "bf16" not in k}  # the precision pixclass delivers
    best_fp32 = max(fp32, key=fp32.get)
    s: dict = {"best_bare": {"name": best_name, "img_s": bare[best_name]},
               "best_bare_fp32": {"name": best_fp32, "img_s": bare[best_fp32]}}
    for malloc in ("plain", "keep"):
        pix = m[f"pixclass_auto_{malloc}"]
        t = {"batch_vs_bare": pix["batch_img_s"] / bare[best_name],
             "batch_vs_bare_fp32": pix["batch_img_s"] / bare[best_fp32]}
        if with_fastai:
            fa = m["fastai"]
            t["predict_vs_fastai"] = fa["predict_ms"] / pix["predict_ms"]
            t["batch_vs_fastai"] = pix["batch_img_s"] / fa["batch_img_s"]
        s[malloc] = {k: {"ratio": round(v, 3), "target": TARGETS[k], "met": v >= TARGETS[k]} for k, v in t.items()}
    if with_fastai:
        fa = m["fastai"]
        for name in ("pixclass_auto_plain", "pixclass_torch_plain"):
            same = sum(a == b for a, b in zip(fa["labels"], m[name]["labels"]))
            same_b = sum(a == b for a, b in zip(fa["batch_labels"], m[name]["batch_labels"]))
            s[f"label_agreement_{name}"] = (f"{same}/{len(fa['labels'])} single, "
                                            f"{same_b}/{len(fa['batch_labels'])} batch")
    return s


def markdown(result: dict) -> str:
    m, s = result["measurements"], result["summary"]
    fa = m.get("fastai")
    fver = result.get("fastai_version", "")
    lines = [f"Prediction speed, {result['model']} ({result['arch']}, 224 px), 2 threads, {result['cpus']} CPUs, "
             f"load average {result['load_average_before'][0]:.2f} at start, median of {result['repeat']} rounds.", "",
             f"| what | fastai {fver} | pixclass, plain process (library) "
             "| pixclass after `keep_freed_memory()` (CLI) |",
             "|---|---|---|---|"]
    for rt in ("auto", "torch"):
        p, k = m[f"pixclass_{rt}_plain"], m[f"pixclass_{rt}_keep"]
        name = f"runtime {p['runtime']}" + (" (auto)" if rt == "auto" else "")
        lines.append(f"| one image `predict`, median ms, {name} | {fa['predict_ms']:.1f} |" if fa and rt == "auto"
                     else f"| one image `predict`, median ms, {name} | |")
        lines[-1] += f" {p['predict_ms']:.1f} | {k['predict_ms']:.1f} |"
        lines.append((f"| batches (`get_preds` / `predict_many`), img/s, {name} | {fa['batch_img_s']:.1f} |"
                      if fa and rt == "auto" else f"| batches (`predict_many`), img/s, {name} | |")
                     + f" {p['batch_img_s']:.1f} | {k['batch_img_s']:.1f} |")
    lines += ["", "Bare forward passes on random input (no decoding), plain process / after `keep_freed_memory()`:", "",
              "| runtime | batch 1, ms | batch 8, img/s | batch 32, img/s |", "|---|---|---|---|"]
    for kind in BARE_KINDS:
        p, k = m[f"bare_{kind}_plain"], m[f"bare_{kind}_keep"]
        lines.append(f"| {kind} | {p['b1_ms']:.1f} / {k['b1_ms']:.1f} | {p['b8_img_s']:.0f} / {k['b8_img_s']:.0f} "
                     f"| {p['b32_img_s']:.0f} / {k['b32_img_s']:.0f} |")
    lines += ["", f"Best bare forward: {s['best_bare']['name']}, {s['best_bare']['img_s']:.0f} img/s; "
              f"in fp32: {s['best_bare_fp32']['name']}, {s['best_bare_fp32']['img_s']:.0f} img/s.", "",
              "| target | library (plain) | CLI setting |", "|---|---|---|"]
    labels = {"predict_vs_fastai": "fastai `predict` ms / pixclass `predict` ms ≥ 3",
              "batch_vs_fastai": "pixclass `predict_many` / fastai `get_preds` ≥ 2",
              "batch_vs_bare": "pixclass `predict_many` / best bare forward ≥ 0.9",
              "batch_vs_bare_fp32": "pixclass `predict_many` / best fp32 bare forward (information)"}
    for key, label in labels.items():
        if key in s["plain"]:
            cells = [f"{s[x][key]['ratio']:.2f} {'met' if s[x][key]['met'] else 'NOT met'}" for x in ("plain", "keep")]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a .pixclass bundle (default: train a 2-epoch elpv:type model)")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved rounds (median reported)")
    ap.add_argument("--passes", type=int, default=3, help="batch passes per measurement (median)")
    ap.add_argument("--n-single", type=int, default=N_SINGLE, help="images timed one by one")
    ap.add_argument("--n-batch", type=int, default=N_BATCH, help="images per batch pass")
    ap.add_argument("--no-fastai", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite the table from results/predict.json")
    ap.add_argument("--quiet-load", type=float, default=1.0,
                    help="wait until the 1-minute load average is at most this before measuring")
    ap.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --quiet-load at most")
    args = ap.parse_args()
    if args.report_only:
        result = json.loads((RESULTS / "predict.json").read_text())
        result["summary"] = summarize(result["measurements"], "fastai" in result["measurements"])
        return report(result)

    items = prepare_images()
    files = [p for p, _ in items]
    for f in files:  # page cache warm for every contender
        Path(f).read_bytes()
    files_json = RESULTS / "predict-files.json"
    files_json.write_text(json.dumps(files))
    model = ensure_model(args.model)
    onnx, onnx_source = ensure_onnx(model)
    from pixclass.export.bundle import read_meta

    meta = read_meta(model)
    result: dict = {"model": str(model), "arch": meta["arch"], "onnx": str(onnx), "onnx_source": onnx_source,
                    "images": len(files), "n_single": args.n_single, "n_batch": args.n_batch, "repeat": args.repeat,
                    "cpus": os.cpu_count()}
    why_not = "skipped (--no-fastai)" if args.no_fastai else ensure_fastai(("timm",))
    if why_not is None:
        result["fastai_version"] = fastai_version()
        build = run_json([str(FASTAI_PYTHON), "-c", FASTAI_BUILD, str(model), str(IMAGES / "items.json"),
                          str(RESULTS / "predict-fastai.pkl")])
        result["fastai_vocab"] = build["vocab"]
    else:
        result["fastai_error"] = why_not
    result["wait_for_quiet"] = wait_for_quiet(args.quiet_load, args.max_wait)
    result["load_average_before"] = os.getloadavg()
    t0 = time.perf_counter()
    result["measurements"] = measure(args, model, onnx, files_json, why_not is None)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["load_average_after"] = os.getloadavg()
    result["summary"] = summarize(result["measurements"], why_not is None)
    report(result)


def report(result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "predict.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (RESULTS / "predict.md").write_text(table)
    print(table)
    for k, v in result["summary"].items():
        if k.startswith("label_agreement"):
            print(f"{k}: {v}")
    if "fastai_error" in result:
        print(f"fastai not measured: {result['fastai_error']}")


if __name__ == "__main__":
    main()
