#!/usr/bin/env python3
"""TTS benchmark: our Rust engine (`avb speak`) against Python kokoro-onnx 0.6.1.

Both sides use the same model (data/assets/kokoro-v1.0.int8.onnx), the same voice
(from data/assets/voices/*.bin), the same text and the same onnxruntime intra-op
thread count (inter-op 1 on both). Runs are interleaved: for each repetition and
each text, the Rust CLI runs, then the Python reference (bench/kokoro_onnx_ref.py
in the bench venv). Every measurement is a fresh process, so CPU time and peak
RSS are per process (taken from os.wait4's rusage).

Measured per run:
  synth_s      wall seconds of synthesis, as timed inside the process (from just
               before phonemization to the last sample; model load excluded)
  audio_s      seconds of audio produced
  RTF          audio_s / synth_s (higher is better; "x real time")
  CPU/audio    (user + sys CPU seconds of the whole process) / audio_s, lower is
               better. Whole process: includes startup and model load on both sides
               (and the Python interpreter and imports on the Python side)
  synth CPU/audio  CPU seconds of synthesis only / audio_s, for processes that report
               `synth_cpu_secs` in their JSON (the Python helper does; avb speak not yet)
  first_audio  seconds from synthesis start until the first chunk of samples is ready
  peak RSS     ru_maxrss of the process
Reported: medians over the repetitions, and Rust/Python ratios.

Usage:
  python3 bench/tts_bench.py --reps 3 --threads 2          # the full benchmark
  python3 bench/tts_bench.py --quick                        # 1 rep, short text only
  python3 bench/tts_bench.py --reps 3 --threads 2 --markdown  # table for BENCHMARKS.md
  python3 bench/tts_bench.py --reps 3 --threads 2 --rust-sessions 2 --also-original-graph
      # the engine's default layout, plus `avb speak --original-graph` (the same binary without
      # the int8 convolution rewrite) interleaved, to show what that rewrite is worth

The venv lives at $AVB_CACHE_DIR/bench-venv (default ~/.cache/avb/bench-venv) and
is created on first use (pip install kokoro-onnx==0.6.1 onnxruntime==1.32.0); the
voices .npz kokoro-onnx needs is built from data/assets/voices/*.bin into the same
cache directory. Python 3.11 standard library only (the venv is only used by the
reference helper).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve().parent / "kokoro_onnx_ref.py"
KOKORO_ONNX_VERSION = "0.6.1"
ONNXRUNTIME_VERSION = "1.32.0"
MODEL_FILE = "kokoro-v1.0.int8.onnx"
VOICE_SHAPE = (510, 1, 256)

# ~200 characters.
SHORT_TEXT = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in the salt "
    "wind. Every evening, the keeper climbed the spiral stairs and lit the lamp for the ships "
    "passing in the dark."
)

# ~2000 characters.
LONG_TEXT = """\
When the first trains reached the valley, the town changed faster than anyone had expected. \
Farmers who had spent their whole lives within a day's walk of the river could now send their \
apples to the city and be paid within the week. The baker on the main street began to sell bread \
to travelers waiting on the platform, and before long he had hired two apprentices and opened a \
second shop near the station. Children gathered at the fence each afternoon to watch the engines \
arrive, counting the carriages and waving at the drivers, who always waved back.

Not everyone welcomed the change. The older families worried that the quiet rhythm of the seasons \
would be lost, that strangers would buy the best land, and that the young would leave for the \
city and never return. Some of those fears came true. Within ten years, half of the mill workers \
had moved away, and the school had to close one of its classrooms. Yet the town did not fade. New \
people arrived with new trades: a printer, a doctor, a woman who repaired clocks and sewing \
machines, and a teacher who started an evening class for adults who had never learned to read.

The river, which had once been the only road to the outside world, became a place for rest rather \
than work. On summer evenings, families walked along its banks, and the old ferryman, no longer \
needed to carry goods across, took visitors for slow rides under the willows. He liked to tell \
them about the floods of his childhood, when the water had risen so high that boats floated \
through the market square.

Looking back, most people agreed that the railway had brought both loss and opportunity. The \
valley was no longer a hidden place, but it had found a new way to belong to the wider world. The \
station clock, repaired many times by the same patient hands, still keeps good time. And every \
morning, when the first whistle sounded across the fields, the town woke a little earlier, ready \
for whatever the day might bring.
"""

TEXTS = {"short": SHORT_TEXT, "long": LONG_TEXT}
ENGINES = ["rust", "python"]
# With --also-original-graph: avb speak --original-graph, to show what the int8 convolution
# rewrite (crates/tts/src/onnx_graph) is worth on its own.
RUST_ORIGINAL = "rust-original"
LABELS = {"rust": "Rust `avb speak`", RUST_ORIGINAL: "Rust `avb speak --original-graph`",
          "python": "kokoro-onnx"}
GOAL_RTF_RATIO_LONG = 2.0
GOAL_FIRST_AUDIO_LONG = 0.5
GOAL_RSS_RATIO_LONG = 1.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Setup: venv, voices .npz, binary


def cache_dir() -> Path:
    env = os.environ.get("AVB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "avb"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> Path:
    py = venv_python(venv)
    if not py.exists():
        log(f"creating bench venv at {venv} (kokoro-onnx=={KOKORO_ONNX_VERSION}, "
            f"onnxruntime=={ONNXRUNTIME_VERSION})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet",
             f"kokoro-onnx=={KOKORO_ONNX_VERSION}", f"onnxruntime=={ONNXRUNTIME_VERSION}"],
            check=True,
        )
    probe = subprocess.run(
        [str(py), "-c",
         "import importlib.metadata as m, json; "
         "print(json.dumps({d: m.version(d) for d in ('kokoro-onnx', 'onnxruntime')}))"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        sys.exit(f"bench venv {venv} is broken (delete it to recreate):\n{probe.stderr}")
    versions = json.loads(probe.stdout)
    want = {"kokoro-onnx": KOKORO_ONNX_VERSION, "onnxruntime": ONNXRUNTIME_VERSION}
    if versions != want:
        log(f"warning: bench venv has {versions}, expected {want}")
    return py


def npy_header(shape: tuple[int, ...]) -> bytes:
    """NPY v1.0 header for little-endian float32 C-order data, padded to 128 bytes."""
    hdr = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    hdr += " " * (128 - 10 - len(hdr) - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode("latin1")


def ensure_voices_npz(voices_dir: Path, out: Path) -> Path:
    """Packs voices/*.bin (raw float32 [510,1,256]) into the .npz kokoro-onnx loads."""
    bins = sorted(voices_dir.glob("*.bin"))
    if not bins:
        sys.exit(f"no voices in {voices_dir} (run deploy/fetch_assets.py)")
    newest = max(b.stat().st_mtime for b in bins)
    if out.exists() and out.stat().st_mtime >= newest:
        with zipfile.ZipFile(out) as z:
            if sorted(z.namelist()) == sorted(b.stem + ".npy" for b in bins):
                return out
    log(f"building {out} from {len(bins)} voices in {voices_dir}")
    size = VOICE_SHAPE[0] * VOICE_SHAPE[1] * VOICE_SHAPE[2] * 4
    head = npy_header(VOICE_SHAPE)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for b in bins:
            data = b.read_bytes()
            if len(data) != size:
                sys.exit(f"{b}: {len(data)} bytes, expected {size} (float32 {VOICE_SHAPE})")
            z.writestr(b.stem + ".npy", head + data)
    tmp.replace(out)
    return out


def default_avb() -> Path:
    release = REPO / "target" / "release" / "avb"
    return release if release.exists() else REPO / "target" / "debug" / "avb"


# ---------------------------------------------------------------------------------------------
# Running one measurement


def run_measured(cmd: list[str], text: str, env: dict[str, str]) -> dict:
    """Runs cmd with text on stdin; returns its JSON line (stderr) plus rusage of that process."""
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        stdin.write(text.encode())
        stdin.seek(0)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}:\n{stderr[-4000:]}")
    result = None
    for line in reversed(stderr.splitlines()):
        line = line.strip()
        if line.startswith("{") and "audio_secs" in line:
            result = json.loads(line)
            break
    if result is None:
        raise RuntimeError(f"no JSON timing line from {cmd[0]}:\n{stderr[-4000:]}")
    result["process_wall_secs"] = wall
    result["cpu_secs"] = ru.ru_utime + ru.ru_stime
    result["peak_rss_mb"] = ru.ru_maxrss / 1024  # Linux: KiB
    audio = result["audio_secs"]
    result["rtf"] = audio / result["synth_secs"] if result["synth_secs"] > 0 else None
    result["cpu_per_audio"] = result["cpu_secs"] / audio if audio > 0 else None
    # Synthesis-only CPU, when the process reports it (the Python helper does; avb speak not yet).
    synth_cpu = result.get("synth_cpu_secs")
    result["synth_cpu_per_audio"] = synth_cpu / audio if synth_cpu is not None and audio > 0 else None
    return result


# ---------------------------------------------------------------------------------------------
# Report


def median(runs: list[dict], key: str):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(v, spec=".2f", suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


COLUMNS = [
    # (header, key, format)
    ("RTF (x)", "rtf", ".2f"),
    ("CPU-s/audio-s", "cpu_per_audio", ".2f"),
    ("synth CPU-s/audio-s", "synth_cpu_per_audio", ".2f"),
    ("first audio (s)", "first_audio_secs", ".3f"),
    ("peak RSS (MB)", "peak_rss_mb", ".0f"),
    ("synth (s)", "synth_secs", ".2f"),
    ("audio (s)", "audio_secs", ".2f"),
    ("load (s)", "load_secs", ".2f"),
    ("CPU (s)", "cpu_secs", ".2f"),
    ("chunks", "chunks", ".0f"),
]


def summarize(results: dict) -> dict:
    summary = {}
    for name, per_engine in results.items():
        med = {e: {k: median(per_engine[e], k) for _, k, _ in COLUMNS} for e in ENGINES}
        r, p = med["rust"], med["python"]
        summary[name] = {
            "median": med,
            "n": min(len(per_engine[e]) for e in ENGINES),
            "rtf_ratio": ratio(r["rtf"], p["rtf"]),
            "cpu_per_audio_ratio": ratio(r["cpu_per_audio"], p["cpu_per_audio"]),
            "first_audio_ratio": ratio(r["first_audio_secs"], p["first_audio_secs"]),
            "rss_ratio": ratio(r["peak_rss_mb"], p["peak_rss_mb"]),
        }
        if RUST_ORIGINAL in med:
            o = med[RUST_ORIGINAL]
            summary[name]["original_graph"] = {
                "rtf_ratio": ratio(o["rtf"], p["rtf"]),
                "cpu_per_audio_ratio": ratio(o["cpu_per_audio"], p["cpu_per_audio"]),
                "first_audio_ratio": ratio(o["first_audio_secs"], p["first_audio_secs"]),
                "rss_ratio": ratio(o["peak_rss_mb"], p["peak_rss_mb"]),
                "rewrite_speedup": ratio(r["rtf"], o["rtf"]),
            }
    return summary


def goals(summary: dict) -> list[tuple[str, str]]:
    if "long" not in summary:
        return [("long-text goals", "not measured (--quick / --texts)")]
    s = summary["long"]
    rr = s["rtf_ratio"]
    fa = s["median"]["rust"]["first_audio_secs"]
    rss = s["rss_ratio"]
    return [
        (f"Rust peak RSS <= {GOAL_RSS_RATIO_LONG}x Python's on long text",
         "-" if rss is None else f"{rss:.2f}x  {'PASS' if rss <= GOAL_RSS_RATIO_LONG else 'FAIL'}"),
        (f"Rust RTF >= {GOAL_RTF_RATIO_LONG}x Python's on long text",
         "-" if rr is None else f"{rr:.2f}x  {'PASS' if rr >= GOAL_RTF_RATIO_LONG else 'FAIL'}"),
        (f"Rust time-to-first-audio <= {GOAL_FIRST_AUDIO_LONG} s on long text",
         "-" if fa is None else f"{fa:.3f} s  {'PASS' if fa <= GOAL_FIRST_AUDIO_LONG else 'FAIL'}"),
    ]


def render_text(summary: dict, meta: dict) -> str:
    lines = [f"TTS benchmark: Rust `avb speak` vs kokoro-onnx {meta['kokoro_onnx']} "
             f"(onnxruntime {meta['onnxruntime']})",
             f"  {meta['config']}", ""]
    head = ["text", "engine"] + [h for h, _, _ in COLUMNS]
    rows = []
    for name, s in summary.items():
        for e in ENGINES:
            m = s["median"][e]
            rows.append([f"{name} ({meta['chars'][name]} ch)", e]
                        + [fmt(m[k], f) for _, k, f in COLUMNS])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    lines.append(f"medians over {meta['reps']} rep(s):")
    lines.append(line(head))
    lines.append(line(["-" * w for w in widths]))
    lines += [line(r) for r in rows]
    lines.append("")
    lines.append("ratios Rust/Python:")
    for name, s in summary.items():
        lines.append(
            f"  {name:5s}  RTF {fmt(s['rtf_ratio'], '.2f', 'x')} (higher is better)   "
            f"CPU-s/audio-s {fmt(s['cpu_per_audio_ratio'], '.2f', 'x')} (lower is better)   "
            f"first audio {fmt(s['first_audio_ratio'], '.2f', 'x')}   "
            f"peak RSS {fmt(s['rss_ratio'], '.2f', 'x')}")
    for name, s in summary.items():
        if "original_graph" in s:
            o = s["original_graph"]
            lines.append(f"  {name:5s}  original graph: RTF {fmt(o['rtf_ratio'], '.2f', 'x')} of Python; "
                         f"the rewrite is worth {fmt(o['rewrite_speedup'], '.2f', 'x')} RTF")
    lines.append("")
    lines.append("goals:")
    lines += [f"  {g}: {v}" for g, v in goals(summary)]
    for w in meta["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def render_markdown(summary: dict, meta: dict) -> str:
    out = [f"_{meta['date']}; {meta['config']}; kokoro-onnx {meta['kokoro_onnx']}, "
           f"onnxruntime {meta['onnxruntime']}; medians of {meta['reps']} rep(s)._", ""]
    cols = [("RTF (x)", "rtf", ".2f"), ("CPU-s / audio-s", "cpu_per_audio", ".2f"),
            ("Synth-only CPU-s / audio-s", "synth_cpu_per_audio", ".2f"),
            ("First audio (s)", "first_audio_secs", ".3f"), ("Peak RSS (MB)", "peak_rss_mb", ".0f"),
            ("Synth (s)", "synth_secs", ".2f"), ("Audio (s)", "audio_secs", ".2f"),
            ("Chunks", "chunks", ".0f")]
    out.append("| Text | Engine | " + " | ".join(h for h, _, _ in cols) + " |")
    out.append("|---|---|" + "---:|" * len(cols))
    for name, s in summary.items():
        for e in ENGINES:
            label = LABELS[e]
            m = s["median"][e]
            out.append(f"| {name} ({meta['chars'][name]} chars) | {label} | "
                       + " | ".join(fmt(m[k], f) for _, k, f in cols) + " |")
    out += ["", "| Text | RTF Rust/Py (↑) | CPU-s per audio-s Rust/Py (↓) | "
                "First audio Rust/Py (↓) | Peak RSS Rust/Py (↓) |",
            "|---|---:|---:|---:|---:|"]
    for name, s in summary.items():
        for label, x in [(name, s), (f"{name}, original graph", s.get("original_graph"))]:
            if x is None:
                continue
            out.append(f"| {label} | {fmt(x['rtf_ratio'], '.2f', '×')} | "
                       f"{fmt(x['cpu_per_audio_ratio'], '.2f', '×')} | "
                       f"{fmt(x['first_audio_ratio'], '.2f', '×')} | {fmt(x['rss_ratio'], '.2f', '×')} |")
    speedups = [f"{name} {fmt(s['original_graph']['rewrite_speedup'], '.2f', '×')}"
                for name, s in summary.items() if "original_graph" in s]
    if speedups:
        out += ["", "RTF with the int8 convolution rewrite / without (same binary): " + ", ".join(speedups)]
    out += ["", "Goals:"]
    out += [f"- {g}: {v}" for g, v in goals(summary)]
    for w in meta["warnings"]:
        out.append(f"- ⚠ {w}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per text and engine (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads, both sides (default 2)")
    ap.add_argument("--rust-sessions", type=int, default=1,
                    help="Rust only: sessions synthesizing chunks concurrently; threads per session = "
                         "--threads / sessions, so both sides use the same number of threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="1 repetition, short text only (a smoke test)")
    ap.add_argument("--texts", default="short,long", help="comma list of: short, long (default both)")
    ap.add_argument("--voice", default="af_heart")
    ap.add_argument("--avb", type=Path, default=None,
                    help="avb binary (default target/release/avb if present, else target/debug/avb)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="data dir holding assets/ (default $AVB_DATA_DIR or data)")
    ap.add_argument("--venv", type=Path, default=None,
                    help="bench venv (default $AVB_CACHE_DIR/bench-venv, ~/.cache/avb/bench-venv)")
    ap.add_argument("--py-api", choices=("create", "stream"), default="create",
                    help="kokoro-onnx call: create() (default) or create_stream(); see kokoro_onnx_ref.py")
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed runs of each engine on the short text first (default 0)")
    ap.add_argument("--also-original-graph", action="store_true",
                    help="also run avb speak --original-graph (no int8 convolution rewrite), interleaved")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table (for BENCHMARKS.md)")
    ap.add_argument("--save-json", type=Path, default=None, help="write every run and the summary here")
    ap.add_argument("--keep-wavs", type=Path, default=None, help="keep the WAVs of the last rep in this dir")
    args = ap.parse_args()

    if args.quick:
        args.reps, args.texts = 1, "short"
    if args.also_original_graph:
        ENGINES.append(RUST_ORIGINAL)
    names = [t.strip() for t in args.texts.split(",") if t.strip()]
    for n in names:
        if n not in TEXTS:
            ap.error(f"unknown text {n!r} (choose from {', '.join(TEXTS)})")
    if args.reps < 1 or args.threads < 1:
        ap.error("--reps and --threads must be >= 1")

    data_dir = (args.data_dir or Path(os.environ.get("AVB_DATA_DIR", "data")))
    if not data_dir.is_absolute():
        data_dir = (Path.cwd() / data_dir) if (Path.cwd() / data_dir).exists() else REPO / data_dir
    assets = data_dir / "assets"
    model = assets / MODEL_FILE
    if not model.exists():
        sys.exit(f"model not found: {model} (run deploy/fetch_assets.py or pass --data-dir)")
    avb = (args.avb or default_avb()).resolve()
    if not avb.exists():
        sys.exit(f"avb binary not found: {avb} (cargo build --release --bin avb, or pass --avb)")

    cache = cache_dir()
    py = ensure_venv(args.venv or cache / "bench-venv")
    voices_npz = ensure_voices_npz(assets / "voices", cache / "bench-voices.npz")

    warnings = []
    if "debug" in avb.parts:
        warnings.append(f"using a debug build ({avb}); build with --release for real numbers")
    ncpu = os.cpu_count() or 1
    if args.threads > ncpu:
        warnings.append(f"--threads {args.threads} > {ncpu} CPUs")
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        warnings.append(f"machine not idle at start (1-min load average {load1:.2f} on {ncpu} CPUs)")

    env = dict(os.environ)
    env.pop("AVB_TTS_THREADS", None)  # --threads is passed explicitly
    env.pop("AVB_TTS_SESSIONS", None)
    env.setdefault("RUST_LOG", "warn")
    # avb caps glibc's malloc arenas at 2 unless the environment sets a cap (it re-executes
    # itself with MALLOC_ARENA_MAX); kokoro-onnx runs under the same cap, so the memory ratio
    # compares the engines, not allocator settings.
    env.setdefault("MALLOC_ARENA_MAX", "2")

    tmp_wavs = None if args.keep_wavs else tempfile.TemporaryDirectory(prefix="avb-tts-bench-")
    wav_dir = args.keep_wavs or Path(tmp_wavs.name)
    wav_dir.mkdir(parents=True, exist_ok=True)

    def cmd_for(engine: str, name: str) -> list[str]:
        wav = str(wav_dir / f"{name}-{engine}.wav")
        if engine in ("rust", RUST_ORIGINAL):
            sessions = max(1, args.rust_sessions)
            threads = max(1, args.threads // sessions)
            return [str(avb), "speak", "-", "--voice", args.voice, "--out", wav,
                    "--threads", str(threads), "--sessions", str(sessions),
                    "--data-dir", str(data_dir), "--json"] + (
                        ["--original-graph"] if engine == RUST_ORIGINAL else [])
        return [str(py), str(HELPER), "-", "--model", str(model), "--voices", str(voices_npz),
                "--voice", args.voice, "--threads", str(args.threads), "--api", args.py_api,
                "--out", wav]

    for i in range(args.warmup):
        for engine in ENGINES:
            log(f"warmup {i + 1}/{args.warmup} {engine}")
            run_measured(cmd_for(engine, "warmup"), SHORT_TEXT, env)

    results = {n: {e: [] for e in ENGINES} for n in names}
    py_versions = {}
    started = time.time()
    for rep in range(args.reps):
        for name in names:
            for engine in ENGINES:
                r = run_measured(cmd_for(engine, name), TEXTS[name], env)
                r["rep"] = rep
                results[name][engine].append(r)
                if engine == "python":
                    py_versions = {k: r.get(k) for k in ("kokoro_onnx", "onnxruntime")}
                log(f"rep {rep + 1}/{args.reps} {name:5s} {engine:13s}: synth {r['synth_secs']:.2f}s "
                    f"audio {r['audio_secs']:.2f}s RTF {fmt(r['rtf'])} "
                    f"first {fmt(r['first_audio_secs'], '.3f')}s CPU {r['cpu_secs']:.2f}s "
                    f"RSS {r['peak_rss_mb']:.0f}MB")
    if tmp_wavs:
        tmp_wavs.cleanup()

    summary = summarize(results)
    for name, s in summary.items():
        ra, pa = s["median"]["rust"]["audio_secs"], s["median"]["python"]["audio_secs"]
        if ra and pa and abs(ra / pa - 1) > 0.15:
            warnings.append(f"{name}: audio lengths differ a lot (Rust {ra:.1f}s, Python {pa:.1f}s); "
                            "compare RTF, not synth seconds")
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "reps": args.reps,
        "chars": {n: len(TEXTS[n]) for n in names},
        "kokoro_onnx": py_versions.get("kokoro_onnx") or KOKORO_ONNX_VERSION,
        "onnxruntime": py_versions.get("onnxruntime") or ONNXRUNTIME_VERSION,
        "config": (f"threads={args.threads}, rust-sessions={args.rust_sessions}, voice={args.voice}, model={MODEL_FILE}, "
                   f"MALLOC_ARENA_MAX={env['MALLOC_ARENA_MAX']}, "
                   f"avb={avb.relative_to(REPO) if avb.is_relative_to(REPO) else avb}, "
                   f"py-api={args.py_api}, {ncpu} CPUs ({platform.machine()}), "
                   f"took {time.time() - started:.0f}s"),
        "warnings": warnings,
    }
    print(render_markdown(summary, meta) if args.markdown else render_text(summary, meta))
    if args.save_json:
        args.save_json.write_text(json.dumps({"meta": meta, "summary": summary, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
