"""ONNX Runtime fp32 against int8 (dynamic and static QDQ quantization) for a trained elpv bundle.

    .venv/bin/python benchmarks/bench_onnx.py RUN/model.pixclass --task defect [--threads 1 2]

Exports the bundle with `pixclass.export.onnx`, quantizes it with `onnxruntime.quantization`
(dynamic: int8 weights, activations quantized at run time; static: QDQ, per-channel int8 weights,
calibrated on 64 training images), and runs each graph in sessions made exactly as `OnnxRuntime`
makes them. Reports the median latency at batch 1, throughput at batch 32 (no image decoding) for
each thread count, and the accuracy on the 525 fixed validation images of /work/shared/data
(`elpv_split`). Writes `benchmarks/results/onnx.json`; records the load average it started with.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def preprocessed(paths: list[Path], meta: dict) -> np.ndarray:
    from pixclass.data.augment import eval_transform
    from pixclass.data.images import open_image

    transform = eval_transform(meta["input_size"], meta["mean"], meta["std"])
    return np.stack([transform(open_image(p)).numpy() for p in paths]).astype(np.float32)


def timed(run, batch: np.ndarray, repeats: int) -> float:
    for _ in range(3):
        run(batch)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--task", default="defect", choices=["type", "defect"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    from pixclass.demo.elpv import elpv_items, elpv_split
    from pixclass.export.bundle import read_meta
    from pixclass.export.onnx import export_onnx
    from pixclass.export.onnx_runtime import _session

    load = os.getloadavg()[0]
    meta = read_meta(args.bundle)
    paths, labels = elpv_items(args.task)
    split = elpv_split()
    valid = preprocessed([paths[i] for i in split["valid_idx"]], meta)
    truth = np.array([meta["classes"].index(str(labels[i])) for i in split["valid_idx"]])
    calib = preprocessed([paths[i] for i in split["train_idx"][:64]], meta)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter([{"image": calib[i:i + 8]} for i in range(0, len(calib), 8)])

        def get_next(self):
            return next(self.rows, None)

    tmp = Path(tempfile.mkdtemp())
    fp32 = export_onnx(args.bundle, tmp / "fp32.onnx")
    graphs = {"fp32": fp32, "int8 dynamic": tmp / "dynamic.onnx", "int8 static QDQ": tmp / "static.onnx"}
    quantize_dynamic(fp32, graphs["int8 dynamic"], weight_type=QuantType.QInt8)
    quantize_static(fp32, graphs["int8 static QDQ"], Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)

    results, reference = [], None
    for name, path in graphs.items():
        for threads in args.threads:
            session = _session(path.read_bytes(), ["CPUExecutionProvider"], threads, path)

            def run(batch: np.ndarray, session=session) -> np.ndarray:
                return session.run(["logits"], {"image": batch})[0]

            row = {"graph": name, "threads": threads, "file_mb": round(path.stat().st_size / 1e6, 2),
                   "batch1_ms": round(timed(run, valid[:1], 100) * 1e3, 2),
                   "batch32_img_s": round(32 / timed(run, valid[:32], 10), 1)}
            if threads == args.threads[-1]:
                logits = np.concatenate([run(valid[i:i + 32]) for i in range(0, len(valid), 32)])
                reference = logits if reference is None else reference
                row["accuracy"] = round(float((logits.argmax(1) == truth).mean()) * 100, 2)
                row["agrees_with_fp32"] = round(float((logits.argmax(1) == reference.argmax(1)).mean()) * 100, 2)
                row["max_logit_diff"] = round(float(np.abs(logits - reference).max()), 4)
            results.append(row)
            print(json.dumps(row))
    out = Path(__file__).parent / "results" / "onnx.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"bundle": str(args.bundle), "task": args.task, "load_average_at_start": load,
                               "cores": os.cpu_count(), "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
