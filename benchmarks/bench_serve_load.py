"""Benchmark: a load test of `pixclass serve` beside a one-request-one-forward FastAPI app, same run.

Both servers run the same `.pixclass` model (efficientnet_lite0, the bundle `bench_predict.py`
uses) on 127.0.0.1, one at a time, each in its own process group:
- `pixclass`: `python -m pixclass serve MODEL --host 127.0.0.1 --port P` (its defaults:
  runtime auto = ONNX Runtime; micro-batching as `ServerSettings` sets it);
- `baseline`: `benchmarks/baseline_app.py` under uvicorn, 1 worker: an `async` route, PIL open,
  transform, one torch fp32 forward per request (the shape of fastai's deploy example);
- `baseline_cl`: the same app with `channels_last` (a stronger baseline, for reference).
The load: `--requests` (2,000) POST /predict, each one real JPEG in the multipart field `file`
(48 distinct elpv validation photos, 300×300, cycled), from `--concurrency` (16) clients on
keep-alive connections. The client is a small asyncio HTTP/1.1 loop in this process (prebuilt
request bytes, so it costs the shared 2 cores little; its CPU time is recorded). Each server
gets 32 warm-up requests first. Recorded: requests/s (completed requests / wall time), p50 and
p99 latency, status counts, errors (anything but 200).

Then, against pixclass only, while a background load of normal requests runs: uploads over the
server's per-file and per-request limits, and a decompression bomb (a valid PNG whose header
declares 20000×20000 pixels, ~0.4 MB compressed). They must get 413/422, the background load
must see no errors, and the server must answer normal requests afterwards; the server's peak RSS
is recorded. Writes `results/serve-load.json` and `results/serve-load.md`; prints the target (never asserts).

    .venv/bin/python benchmarks/bench_serve_load.py [--model M.pixclass] [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from bench_predict import ensure_model, prepare_images, wait_for_quiet  # noqa: E402

TARGET_RPS_RATIO = 2.0
N_FILES, WARM_UP = 48, 32
READY_TIMEOUT_S, REQUEST_TIMEOUT_S = 180.0, 120.0


# ---- a minimal HTTP/1.1 client: prebuilt requests, keep-alive connections ----

def multipart_request(port: int, path: str, name: str, data: bytes, content_type: str) -> bytes:
    boundary = "pixclassbench7d1f3a"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response: Content-Length or chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.read()
    return status, body, headers.get("connection", "").lower() != "close"


async def send(port: int, conn: list, request: bytes) -> tuple[int, bytes]:
    """Send `request` on the connection in `conn` (opened or reopened as needed); (status, body).

    The response is read while the body is still being written, so a server that refuses a large
    upload early and closes the connection still gives its answer.
    """
    if conn[0] is None:
        conn[0] = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = conn[0]

    async def write() -> None:
        writer.write(request)
        await writer.drain()

    reading, writing = asyncio.ensure_future(read_response(reader)), asyncio.ensure_future(write())
    try:
        status, body, keep = await asyncio.wait_for(reading, REQUEST_TIMEOUT_S)
    except BaseException:
        writing.cancel()
        close(conn)
        raise
    if not writing.done():  # answered before the body was sent: the connection is not reusable
        writing.cancel()
        keep = False
    elif writing.exception() is not None:
        keep = False
    if not keep:
        close(conn)
    return status, body


def close(conn: list) -> None:
    if conn[0] is not None:
        conn[0][1].close()
        conn[0] = None


async def load(port: int, requests: list[bytes], n: int, concurrency: int) -> dict:
    """`n` requests (cycling `requests`) from `concurrency` clients; latencies and statuses."""
    counter = iter(range(n))
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def client() -> None:
        conn: list = [None]
        for i in counter:
            t0 = time.perf_counter()
            try:
                status, _ = await send(port, conn, requests[i % len(requests)])
                key = str(status)
            except Exception as err:  # a connection failure is an error, not a crash of the benchmark
                key = type(err).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1
        close(conn)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = sorted(latencies)
    return {"requests": n, "concurrency": concurrency, "wall_s": round(wall, 2), "rps": round(n / wall, 1),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
            "max_ms": round(1000 * lat[-1], 1), "statuses": statuses,
            "errors": sum(v for k, v in statuses.items() if k != "200"),
            "client_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2)}


# ---- servers ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], env: dict, port: int, log: Path) -> subprocess.Popen:
    """Start a server in its own process group and wait (bounded) until GET /ready answers 200."""
    out = log.open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=HERE.parent)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.25)
    stop_server(proc)
    raise RuntimeError(f"server not ready within {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if still there after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# ---- the uploads ----

def jpeg_requests(port: int) -> tuple[list[bytes], float]:
    """Prebuilt POST /predict requests for N_FILES real JPEGs; their mean size in kB."""
    files = [Path(p) for p, _ in prepare_images()[:N_FILES]]
    datas = [f.read_bytes() for f in files]
    reqs = [multipart_request(port, "/predict", f.name, d, "image/jpeg") for f, d in zip(files, datas)]
    return reqs, sum(map(len, datas)) / len(datas) / 1000


def png_bomb(side: int = 20000) -> bytes:
    """A valid 8-bit grey PNG of side × side black pixels (400 MB decoded), about 0.4 MB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, parts, row = zlib.compressobj(9), [], b"\0" * (side + 1)  # filter byte + pixels
    block = row * 500
    for _ in range(side // 500):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


async def abuse(port: int, normal: list[bytes], background_n: int) -> dict:
    """Oversized and bomb uploads while a background load runs; then normal requests again."""
    from pixclass.server.settings import ServerSettings

    limits = ServerSettings()
    jpeg = Path(prepare_images()[0][0]).read_bytes()  # a real photo, padded past the limit
    big_file = jpeg + os.urandom(limits.max_file_bytes + (1 << 20) - len(jpeg))  # over the per-file limit
    huge = os.urandom(limits.max_request_bytes + (1 << 20))  # over the per-request limit
    bomb = png_bomb()
    bad = {"file_over_limit": multipart_request(port, "/predict", "big.jpg", big_file, "image/jpeg"),
           "request_over_limit": multipart_request(port, "/predict", "huge.jpg", huge, "image/jpeg"),
           "png_bomb_20000x20000": multipart_request(port, "/predict", "bomb.png", bomb, "image/png")}

    async def attacks() -> dict:
        got: dict[str, list] = {}
        for _ in range(3):
            for name, req in bad.items():
                conn: list = [None]
                try:
                    status, body = await send(port, conn, req)
                    got.setdefault(name, []).append(status)
                except Exception as err:
                    got.setdefault(name, []).append(type(err).__name__)
                close(conn)
                await asyncio.sleep(0.2)
        return got

    background, got = await asyncio.gather(load(port, normal, background_n, 4), attacks())
    after = await load(port, normal, 50, 4)
    ok_codes = {413, 422}
    return {"limits": {"max_file_bytes": limits.max_file_bytes, "max_request_bytes": limits.max_request_bytes},
            "bomb_bytes": len(bomb), "statuses": got, "background": background, "after": after,
            "rejected_as_expected": all(s in ok_codes for v in got.values() for s in v),
            "kept_answering": background["errors"] == 0 and after["errors"] == 0}


# ---- the run ----

def measure_server(name: str, cmd: list[str], env: dict, port: int, args: argparse.Namespace,
                   with_abuse: bool) -> dict:
    reqs, _ = jpeg_requests(port)
    load_before = os.getloadavg()
    proc = start_server(cmd, env, port, RESULTS / f"serve-{name}.log")
    try:
        asyncio.run(load(port, reqs, WARM_UP, 4))
        result = asyncio.run(load(port, reqs, args.requests, args.concurrency))
        result["server_peak_rss_mb"] = peak_rss_mb(proc.pid)
        result["load_average_before"] = load_before
        if with_abuse:
            result["abuse"] = asyncio.run(abuse(port, reqs, background_n=300))
            result["abuse"]["server_peak_rss_mb"] = peak_rss_mb(proc.pid)
            result["abuse"]["server_alive"] = proc.poll() is None
    finally:
        stop_server(proc)
    return result


def markdown(result: dict) -> str:
    lines = [f"Load test: {result['requests']} POST /predict of real JPEGs ({result['jpeg_kb']:.0f} kB mean, "
             f"{result['files']} distinct), {result['concurrency']} concurrent clients, 127.0.0.1, "
             f"{result['cpus']} CPUs, load average {result['load_average_before'][0]:.2f} at start.", "",
             "| server | requests/s | p50 ms | p99 ms | errors | peak RSS MB |", "|---|---|---|---|---|---|"]
    names = {"pixclass": "`pixclass serve` (its defaults)",
             "baseline": "one request, one torch forward (fastai deploy shape)",
             "baseline_cl": "the same with `channels_last`"}
    for key, label in names.items():
        r = result["servers"].get(key)
        if r:
            lines.append(f"| {label} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} "
                         f"| {r['server_peak_rss_mb']} |")
    s = result["summary"]
    lines += ["", f"pixclass / baseline requests/s: **{s['rps_ratio']:.2f}×** (target ≥ {TARGET_RPS_RATIO:g}×: "
                  f"{'met' if s['rps_target_met'] else 'NOT met'})"]
    if "rps_ratio_vs_channels_last" in s:
        lines[-1] += f"; against the channels_last baseline {s['rps_ratio_vs_channels_last']:.2f}×"
    a = result["servers"]["pixclass"].get("abuse")
    if a:
        shown = ", ".join(f"{k}: {sorted(set(map(str, v)))}" for k, v in a["statuses"].items())
        lines += ["", f"Abuse under load: {shown}; background load {a['background']['requests']} requests, "
                      f"{a['background']['errors']} errors; afterwards {a['after']['requests']} requests, "
                      f"{a['after']['errors']} errors; server peak RSS {a['server_peak_rss_mb']} MB "
                      f"({'413/422 as expected' if a['rejected_as_expected'] else 'UNEXPECTED statuses'}, "
                      f"{'kept answering' if a['kept_answering'] else 'DID NOT keep answering'})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a .pixclass bundle (default: bench_predict.py's model)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--only", choices=["pixclass", "baseline", "baseline_cl"], action="append",
                    help="measure only these servers (repeatable)")
    ap.add_argument("--quiet-load", type=float, default=1.0,
                    help="wait until the 1-minute load average is at most this before measuring")
    ap.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --quiet-load at most")
    args = ap.parse_args()
    model = ensure_model(args.model).resolve()
    RESULTS.mkdir(exist_ok=True)
    reqs, kb = jpeg_requests(0)
    result: dict = {"model": str(model), "requests": args.requests, "concurrency": args.concurrency,
                    "files": len(reqs), "jpeg_kb": kb, "cpus": os.cpu_count(),
                    "wait_for_quiet": wait_for_quiet(args.quiet_load, args.max_wait),
                    "load_average_before": os.getloadavg(), "servers": {}}
    env = {**os.environ, "BASELINE_MODEL": str(model)}
    servers = {
        "pixclass": lambda p: ([sys.executable, "-m", "pixclass", "serve", str(model), "--host", "127.0.0.1",
                                "--port", str(p)], env),
        "baseline": lambda p: ([sys.executable, "-m", "uvicorn", "baseline_app:app", "--app-dir", str(HERE),
                                "--host", "127.0.0.1", "--port", str(p), "--workers", "1", "--log-level", "warning"],
                               env),
        "baseline_cl": lambda p: ([sys.executable, "-m", "uvicorn", "baseline_app:app", "--app-dir", str(HERE),
                                   "--host", "127.0.0.1", "--port", str(p), "--workers", "1",
                                   "--log-level", "warning"], {**env, "BASELINE_CHANNELS_LAST": "1"}),
    }
    for name, make in servers.items():
        if args.only and name not in args.only:
            continue
        port = free_port()
        cmd, server_env = make(port)
        print(f"{name}: {args.requests} requests, {args.concurrency} concurrent ...", flush=True)
        result["servers"][name] = measure_server(name, cmd, server_env, port, args, with_abuse=name == "pixclass")
        r = result["servers"][name]
        print(f"  {r['rps']:.1f} requests/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
              f"errors {r['errors']}", flush=True)
    srv = result["servers"]
    if "pixclass" in srv and "baseline" in srv:
        ratio = srv["pixclass"]["rps"] / srv["baseline"]["rps"]
        result["summary"] = {"rps_ratio": round(ratio, 2), "rps_target": TARGET_RPS_RATIO,
                             "rps_target_met": ratio >= TARGET_RPS_RATIO}
        if "baseline_cl" in srv:
            result["summary"]["rps_ratio_vs_channels_last"] = round(
                srv["pixclass"]["rps"] / srv["baseline_cl"]["rps"], 2)
    result["load_average_after"] = os.getloadavg()
    (RESULTS / "serve-load.json").write_text(json.dumps(result, indent=1))
    if "summary" in result:
        table = markdown(result)
        (RESULTS / "serve-load.md").write_text(table)
        print(table)


if __name__ == "__main__":
    main()
