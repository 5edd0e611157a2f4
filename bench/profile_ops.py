#!/usr/bin/env python3
"""Where the Kokoro graph spends its time: ONNX Runtime's profiler on one chunk, summed by op type.

Usage (the bench venv of tts_bench.py has onnxruntime 1.32.0):
  ~/.cache/avb/bench-venv/bin/python bench/profile_ops.py [--tokens 200] [--threads 1]

Runs data/assets/kokoro-v1.0.int8.onnx on a synthetic chunk of N token ids (the graph's cost
depends on the length, not on which phonemes) with the af_heart style row for N, twice, and
prints milliseconds per run and the share of each op type.
"""

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=REPO / "data")
    args = ap.parse_args()
    assets = args.data_dir / "assets"
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "kokoro")
    session = ort.InferenceSession(
        str(assets / "kokoro-v1.0.int8.onnx"), options, providers=["CPUExecutionProvider"]
    )
    voice = np.fromfile(assets / "voices/af_heart.bin", dtype=np.float32).reshape(510, 256)
    n = args.tokens
    # Ids 16..165 exist in the vocabulary's range (the embedding has 178 rows).
    tokens = np.array([[0] + [(i * 7) % 150 + 16 for i in range(n)] + [0]], dtype=np.int64)
    runs = 2
    for _ in range(runs):
        audio = session.run(
            None,
            {"tokens": tokens, "style": voice[n : n + 1], "speed": np.array([1.0], np.float32)},
        )[0]
    events = json.load(open(session.end_profiling()))
    spent = collections.Counter()
    count = collections.Counter()
    for e in events:
        if e.get("cat") == "Node":
            op = e["args"].get("op_name", "?")
            spent[op] += e["dur"]
            count[op] += 1
    total = sum(spent.values())
    print(f"{n} tokens -> {audio.size / 24000:.1f} s of audio; {total / 1e3 / runs:.0f} ms per run")
    for op, us in spent.most_common(12):
        print(f"{op:24s} {us / 1e3 / runs:8.1f} ms {100 * us / total:5.1f} %  nodes={count[op] // runs}")


if __name__ == "__main__":
    main()
