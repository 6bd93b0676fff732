"""Benchmark: `pixclass verify` against fastai's `verify_images` on the same 1,000 real photos.

The photos are built from real photographs that installed packages ship (no internet):
scikit-learn's `china.jpg` and `flower.jpg` and the elpv-dataset solar-cell photos. Each of the
1,000 files is a random crop (50-100 % of the source), randomly flipped, resized so its longest
side is 800-4000 px (camera-like sizes), saved as JPEG at quality 75-95 (20 % progressive),
seeded so every run builds the same corpus.

Four timings of the verification call itself (imports excluded), each the median of `--repeat`
runs on a warm page cache, all with 2 worker processes:
- `pixclass`: `verify_images(DIR, quarantine=False)` - the default: every extra check, JPEGs
  judged by their skeleton (see `pixclass.collect.jpeg_skeleton`), others decoded;
- `pixclass_full`: the same with `full_decode=True` - every image decoded (JPEGs at 1/8 scale);
- `fastai`: fastai's own `verify_images(get_image_files(DIR))` in `benchmarks/.venv-fastai`;
- `fastai-half`: the half-size decode the issue attributes to fastai, run through fastai's
  `parallel` (same process pool), for reference.
Also times the whole `pixclass verify --dry-run` command. Writes benchmarks/results/verify.json.

    .venv/bin/python benchmarks/bench_verify.py [--n 1000] [--repeat 3] [--no-fastai]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from fastai_venv import FASTAI_PYTHON, ensure_fastai, fastai_version  # noqa: E402

FASTAI_SCRIPT = """
import sys, time
from fastai.vision.all import get_image_files, verify_images, verify_image, parallel
from PIL import Image
def half(fn):
    try:
        im = Image.open(fn); im.draft(im.mode, (im.size[0] // 2, im.size[1] // 2)); im.load(); return True
    except Exception: return False
files = get_image_files(sys.argv[1])
t = time.perf_counter()
if sys.argv[2] == "fastai":
    bad = verify_images(files)
else:
    bad = [f for f, ok in zip(files, parallel(half, files, n_workers=2, progress=False)) if not ok]
print(time.perf_counter() - t, len(files), len(bad))
"""

PIXCLASS_SCRIPT = """
import sys, time
from pixclass.collect.verify import verify_images
t = time.perf_counter()
report = verify_images(sys.argv[1], quarantine=False, progress=False, workers=2, full_decode=sys.argv[2] == "full")
print(time.perf_counter() - t, len(report.checks), sum(bool(c.problems) for c in report.checks))
"""


def source_photos() -> list:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    try:
        import elpv_dataset

        folder = Path(elpv_dataset.__file__).parent
        pngs = sorted(folder.rglob("*.png"))[:40]
        sources += [Image.open(p).convert("RGB") for p in pngs]
    except ImportError:
        pass
    return sources


def build_corpus(folder: Path, n: int, seed: int = 0) -> None:
    from PIL import Image, ImageOps

    marker = folder / f".corpus-{n}-{seed}"
    if marker.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sources = source_photos()
    for i in range(n):
        src = sources[i % 2] if i % 4 else rng.choice(sources)  # mostly the two colour photos
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
        x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        im = src.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            im = ImageOps.mirror(im)
        longest = rng.randrange(800, 4001)
        scale = longest / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BICUBIC)
        im.save(folder / f"photo_{i:04d}.jpg", "JPEG", quality=rng.randrange(75, 96),
                progressive=rng.random() < 0.2)
    marker.touch()


def timed_interleaved(commands: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, str]]:
    """Median seconds (as printed by each command) per contender, runs interleaved.

    Interleaving (A B C A B C ...) spreads any background load over all contenders alike.
    """
    runs: dict[str, list[float]] = {name: [] for name in commands}
    last: dict[str, str] = {}
    for _ in range(repeat):
        for name, cmd in commands.items():
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800).stdout.split()
            runs[name].append(float(out[0]))
            last[name] = " ".join(out[1:])
    return {name: (statistics.median(r), last[name]) for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=HERE / "results" / "verify-photos")
    parser.add_argument("--no-fastai", action="store_true")
    args = parser.parse_args()

    build_corpus(args.corpus, args.n)
    files = sorted(args.corpus.glob("*.jpg"))
    for f in files:  # warm the page cache so every contender reads from memory
        f.read_bytes()
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    result: dict = {"photos": len(files), "corpus_mb": round(size_mb, 1), "cpus": os.cpu_count(), "repeat": args.repeat}

    commands = {"pixclass": [sys.executable, "-c", PIXCLASS_SCRIPT, str(args.corpus), "default"],
                "pixclass_full": [sys.executable, "-c", PIXCLASS_SCRIPT, str(args.corpus), "full"]}
    why_not = "skipped (--no-fastai)" if args.no_fastai else ensure_fastai()
    if why_not is None:
        fpy = str(FASTAI_PYTHON)
        result["fastai_version"] = fastai_version()
        commands["fastai"] = [fpy, "-c", FASTAI_SCRIPT, str(args.corpus), "fastai"]
        commands["fastai_half"] = [fpy, "-c", FASTAI_SCRIPT, str(args.corpus), "half"]
    else:
        result["fastai_error"] = why_not
    result["load_average_before"] = os.getloadavg()
    for name, (secs, found) in timed_interleaved(commands, args.repeat).items():
        result[f"{name}_s"], result[f"{name}_found"] = secs, found
    cli = [str(Path(sys.executable).parent / "pixclass"), "verify", str(args.corpus),
           "--dry-run", "--no-progress", "--workers", "2"]
    t = time.perf_counter()
    subprocess.run(cli, check=True, capture_output=True, timeout=1800)
    result["pixclass_cli_s"] = time.perf_counter() - t
    if why_not is None:
        result["speedup_vs_fastai"] = result["fastai_s"] / result["pixclass_s"]
        result["speedup_vs_fastai_half"] = result["fastai_half_s"] / result["pixclass_s"]
        result["full_decode_speedup_vs_fastai"] = result["fastai_s"] / result["pixclass_full_s"]

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "verify.json").write_text(json.dumps(result, indent=2))
    print(f"{len(files)} photos, {size_mb:.0f} MB, {os.cpu_count()} CPUs, median of {args.repeat}")
    print(f"{'contender':<34}{'seconds':>9}{'photos/s':>10}")
    rows = [("pixclass verify_images", result["pixclass_s"]),
            ("pixclass verify_images, full decode", result["pixclass_full_s"]),
            ("pixclass verify (whole command)", result["pixclass_cli_s"])]
    if why_not is None:
        rows += [(f"fastai {result['fastai_version']} verify_images", result["fastai_s"]),
                 ("fastai parallel, half-size decode", result["fastai_half_s"])]
    for name, secs in rows:
        print(f"{name:<34}{secs:>9.2f}{len(files) / secs:>10.0f}")
    if why_not is None:
        print(f"speed-up vs fastai verify_images: {result['speedup_vs_fastai']:.2f}x "
              f"(full decode: {result['full_decode_speedup_vs_fastai']:.2f}x); "
              f"vs half-size decode: {result['speedup_vs_fastai_half']:.2f}x")
    else:
        print(f"fastai not measured: {why_not}")


if __name__ == "__main__":
    main()
