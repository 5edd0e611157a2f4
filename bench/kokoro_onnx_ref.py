#!/usr/bin/env python3
"""Reference synthesis with Python kokoro-onnx, for bench/tts_bench.py.

Runs in the bench venv (kokoro-onnx 0.6.1, onnxruntime 1.32.0), one synthesis per
process, and prints on stderr one JSON line with the same fields as
`avb speak --json`:

    {"audio_secs", "load_secs", "synth_secs", "first_audio_secs", "chunks", "rtf", ...}

plus a few extras (`import_secs`, `synth_cpu_secs`, `api`, versions).

Timing follows the Rust CLI: `load_secs` covers building the onnxruntime session
and the Kokoro object (not the Python imports, reported apart as `import_secs`);
`synth_secs` starts just before synthesis (so it includes phonemization) and
ends when the last sample is produced; `first_audio_secs` is when the first
batch of samples is ready, measured from the same start.

  --api create  (default) `Kokoro.create()`, the usual call. The first-audio
                time is when its first batch returns, caught by wrapping the
                instance's `_create_batch` (a private method of 0.6.1, hence the
                version pin); nothing else changes.
  --api stream  `Kokoro.create_stream()` (async, batches synthesized in a worker
                thread), timing the first chunk yielded. Its audio lacks the
                timing-based pauses `create()` inserts, so lengths differ a little.

Usage: kokoro_onnx_ref.py --model M.onnx --voices V.npz [--voice af_heart]
       [--threads N] [--api create|stream] [--out X.wav] TEXT|-
"""

import argparse
import json
import sys
import time

_t_import = time.perf_counter()

import asyncio  # noqa: E402
import importlib.metadata  # noqa: E402
import wave  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from kokoro_onnx import Kokoro  # noqa: E402

IMPORT_SECS = time.perf_counter() - _t_import


def write_wav(path: str, samples: np.ndarray, rate: int) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def synth_create(k: Kokoro, text: str, voice: str, speed: float, lang: str, t1: float):
    first = []
    inner = k._create_batch  # bound method of this instance

    def timed_batch(*args, **kwargs):
        out = inner(*args, **kwargs)
        first.append(time.perf_counter() - t1)
        return out

    k._create_batch = timed_batch
    samples, rate = k.create(text, voice=voice, speed=speed, lang=lang)
    return samples, rate, (first[0] if first else None), len(first)


def synth_stream(k: Kokoro, text: str, voice: str, speed: float, lang: str, t1: float):
    async def go():
        parts, first, rate = [], None, 24000
        async for samples, rate in k.create_stream(text, voice=voice, speed=speed, lang=lang):
            if first is None:
                first = time.perf_counter() - t1
            parts.append(samples)
        return np.concatenate(parts), rate, first, len(parts)

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", help="text to speak; `-` reads standard input")
    ap.add_argument("--model", required=True)
    ap.add_argument("--voices", required=True, help="voices .npz (name -> float32 [510,1,256])")
    ap.add_argument("--voice", default="af_heart")
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--lang", default="en-us")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    ap.add_argument("--api", choices=("create", "stream"), default="create")
    ap.add_argument("--out", default=None, help="write a 16-bit WAV here")
    args = ap.parse_args()

    text = sys.stdin.read() if args.text == "-" else args.text

    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1  # as the Rust engine sets it
    sess = ort.InferenceSession(args.model, sess_options=opts, providers=["CPUExecutionProvider"])
    k = Kokoro.from_session(sess, args.voices)
    load_secs = time.perf_counter() - t0

    cpu1 = time.process_time()
    t1 = time.perf_counter()
    synth = synth_create if args.api == "create" else synth_stream
    samples, rate, first_audio, chunks = synth(k, text, args.voice, args.speed, args.lang, t1)
    synth_secs = time.perf_counter() - t1
    synth_cpu = time.process_time() - cpu1

    if args.out:
        write_wav(args.out, samples, rate)
    audio_secs = len(samples) / rate
    print(
        json.dumps(
            {
                "audio_secs": audio_secs,
                "load_secs": load_secs,
                "synth_secs": synth_secs,
                "first_audio_secs": first_audio,
                "chunks": chunks,
                "rtf": audio_secs / synth_secs if synth_secs > 0 else None,
                "import_secs": IMPORT_SECS,
                "synth_cpu_secs": synth_cpu,
                "api": args.api,
                "kokoro_onnx": importlib.metadata.version("kokoro-onnx"),
                "onnxruntime": ort.__version__,
            }
        ),
        file=sys.stderr,
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
