#!/usr/bin/env python3
"""Engine layouts side by side: `avb speak` on bench/tts_bench.py's long text under several
environments (e.g. AVB_TTS_SEPARATE_LEAD, AVB_TTS_LEAD_THREADS), interleaved run by run, each a
fresh process. Prints per variant the medians of RTF, first audio and peak RSS, and each
variant's ratio against the first one (the baseline), all measured in the same run.

Usage:
  python3 bench/tts_variants.py --avb target/release/avb --reps 3 \\
      'default:' 'separate lead:AVB_TTS_SEPARATE_LEAD=true' 'no lead:AVB_TTS_LEAD_THREADS=0'
A variant is NAME:VAR=VALUE,VAR=VALUE (nothing after the colon: the defaults).
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tts_bench  # noqa: E402


def add_speak_options(ap: argparse.ArgumentParser) -> None:
    """The options of every `avb speak` benchmark run: binary, repetitions, engine layout."""
    ap.add_argument("--avb", default="target/release/avb")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--data-dir", default="data")


def speak_cmd(args: argparse.Namespace, voice: str) -> list[str]:
    """`avb speak` reading stdin in `voice`, audio discarded, timings as JSON on stderr."""
    return [args.avb, "speak", "-", "--voice", voice, "--out", os.devnull,
            "--threads", str(args.threads), "--sessions", str(args.sessions),
            "--data-dir", args.data_dir, "--json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_speak_options(ap)
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    variants = []
    for v in args.variants:
        name, _, assignments = v.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        variants.append((name, env))
    runs = {name: [] for name, _ in variants}
    for rep in range(args.reps):
        for name, extra in variants:
            env = dict(os.environ, RUST_LOG="warn", **extra)
            r = tts_bench.run_measured(speak_cmd(args, "af_heart"), tts_bench.LONG_TEXT, env)
            runs[name].append(r)
            print(f"rep {rep + 1} {name}: RTF {r['rtf']:.2f}, first audio "
                  f"{r['first_audio_secs']:.3f} s, peak RSS {r['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs)
                  for k in ("rtf", "first_audio_secs", "peak_rss_mb")}
           for name, rs in runs.items()}
    base = variants[0][0]
    print(f"| variant (long text, {args.reps} reps, median) | RTF | vs {base} | first audio (s) "
          f"| peak RSS (MB) | vs {base} |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in variants:
        m = med[name]
        print(f"| {name} | {m['rtf']:.2f} | {m['rtf'] / med[base]['rtf']:.2f}× | "
              f"{m['first_audio_secs']:.3f} | {m['peak_rss_mb']:.0f} | "
              f"{m['peak_rss_mb'] / med[base]['peak_rss_mb']:.2f}× |")


if __name__ == "__main__":
    main()
