"""Benchmark: `pixclass download` of 200 images from a loopback server adding 100 ms per request.

The server (127.0.0.1, OS-chosen port, threaded, HTTP/1.1) serves 200 distinct real-photo JPEGs
(crops of scikit-learn's sample photos, 640 px, ~40-90 kB) and sleeps 100 ms before every answer,
so fetching them one at a time costs at least 200 x 0.1 s = 20 s. We time the whole command
(`pixclass download urls.txt --out DIR --no-progress`, interpreter start-up included), then run
it again and count new downloads (resume must make that 0). `--sequential` also measures the
real one-at-a-time time (`--concurrency 1`). Each measurement is the median of `--repeat` runs
into fresh folders (other work on a 2-core machine adds noise). Writes
benchmarks/results/download.json.

    .venv/bin/python benchmarks/bench_download.py [--n 200] [--latency 0.1] [--repeat 3] [--sequential]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def make_photos(n: int, seed: int = 0) -> list[bytes]:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = random.Random(seed)
    sources = [Image.fromarray(a) for a in load_sample_images().images]
    photos = []
    for i in range(n):
        src = sources[i % 2]
        cw, ch = rng.randrange(300, src.width), rng.randrange(220, src.height)
        x, y = rng.randrange(src.width - cw + 1), rng.randrange(src.height - ch + 1)
        im = src.crop((x, y, x + cw, y + ch)).resize((640, round(640 * ch / cw)))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=rng.randrange(80, 95))
        photos.append(buf.getvalue())
    return photos


def start_server(photos: list[bytes], latency: float) -> tuple[ThreadingHTTPServer, list[int]]:
    hits = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's
        # delayed ACK of the headers (~40 ms on Linux), and every request would cost 140 ms.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                hits[0] += 1
            time.sleep(latency)
            try:
                body = photos[int(self.path.rsplit("/", 1)[-1].split(".")[0])]
                status = 200
            except (ValueError, IndexError):
                body, status = b"not found", 404
            self.send_response(status)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, hits


CPU_SECONDS: list[float] = []  # user + system time of each command, whatever the machine's load


def run(cli: list[str]) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cli, check=True, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return seconds, done.stdout.strip().splitlines()[-1]


def manifest_rows(out: Path) -> int:
    return max(0, len((out / "manifest.csv").read_text().splitlines()) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sequential", action="store_true", help="also measure --concurrency 1")
    parser.add_argument("--extra", default="", help="extra download flags, e.g. '--per-host 32'")
    args = parser.parse_args()

    load_before = os.getloadavg()
    photos = make_photos(args.n)
    server, hits = start_server(photos, args.latency)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    work = Path(tempfile.mkdtemp(prefix="pixclass-bench-"))
    urls = work / "urls.txt"
    urls.write_text("".join(f"{base}/photos/{i}.jpg\n" for i in range(args.n)))
    pixclass = str(Path(sys.executable).parent / "pixclass")
    firsts, reruns, new_rows, rerun_requests, cpus = [], [], [], [], []
    try:
        for i in range(args.repeat):
            out = work / f"out{i}"
            cli = [pixclass, "download", str(urls), "--out", str(out), "--no-progress", *args.extra.split()]
            seconds, first_line = run(cli)
            firsts.append(seconds)
            cpus.append(CPU_SECONDS[-1])
            rows_after_first, hits_after_first = manifest_rows(out), hits[0]
            seconds, rerun_line = run(cli)
            reruns.append(seconds)
            new_rows.append(manifest_rows(out) - rows_after_first)
            rerun_requests.append(hits[0] - hits_after_first)
        first_s, rerun_s = statistics.median(firsts), statistics.median(reruns)
        baseline_s = args.n * args.latency
        result = {
            "images": args.n, "latency_s": args.latency, "mb": round(sum(map(len, photos)) / 1e6, 1),
            "repeat": args.repeat, "load_average_before": load_before, "extra_flags": args.extra,
            "download_s": first_s, "download_runs_s": firsts, "summary": first_line,
            "download_cpu_s": statistics.median(cpus),
            "kept": len(list(out.glob("*.jpg"))),
            "sequential_floor_s": baseline_s, "speedup_vs_sequential_floor": baseline_s / first_s,
            "rerun_s": rerun_s, "rerun_summary": rerun_line,
            "rerun_new_downloads": max(new_rows), "rerun_requests": max(rerun_requests),
        }
        if args.sequential:
            result["sequential_s"], _ = run([pixclass, "download", str(urls), "--out", str(work / "seq"),
                                             "--no-progress", "--concurrency", "1"])
            result["speedup_vs_sequential"] = result["sequential_s"] / first_s
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "download.json").write_text(json.dumps(result, indent=2))
    print(f"{args.n} images ({result['mb']} MB), {args.latency * 1000:.0f} ms latency per request, "
          f"median of {args.repeat}, load average before {load_before[0]:.1f}")
    print(f"{'run':<36}{'seconds':>9}")
    print(f"{'one at a time (n x latency floor)':<36}{baseline_s:>9.2f}")
    if args.sequential:
        print(f"{'pixclass download --concurrency 1':<36}{result['sequential_s']:>9.2f}")
    print(f"{'pixclass download (whole command)':<36}{first_s:>9.2f}   "
          f"{result['speedup_vs_sequential_floor']:.1f}x faster, {result['download_cpu_s']:.2f} s of CPU")
    print(f"{'rerun (resume)':<36}{rerun_s:>9.2f}   "
          f"{result['rerun_new_downloads']} new downloads, {result['rerun_requests']} requests")


if __name__ == "__main__":
    main()
