#!/usr/bin/env python3
"""Speech per language: `avb speak` on a few sentences in each language the engine reads, in
that language's voice, interleaved rep by rep, each a fresh process. Prints per language the
medians of RTF, first audio and phonemization time per 1 000 characters (`plan_secs`: text to
chunks, measured before synthesis), and each against American English (the misaki path)
measured in the same run.

Usage: python3 bench/language_bench.py --avb target/release/avb --reps 3
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tts_bench  # noqa: E402
from tts_variants import add_speak_options, speak_cmd  # noqa: E402

TEXTS = {
    "en-US": ("af_heart", "The weather is lovely today. We walked along the river to the old "
              "bridge, and then we had lunch in a small cafe near the market square."),
    "es": ("ef_dora", "Hoy hace muy buen tiempo. Caminamos por el río hasta el puente viejo, y "
           "luego comimos en un pequeño café cerca de la plaza del mercado."),
    "fr-FR": ("ff_siwis", "Il fait très beau aujourd'hui. Nous avons marché le long de la rivière "
              "jusqu'au vieux pont, puis nous avons déjeuné dans un petit café près du marché."),
    "it": ("if_sara", "Oggi il tempo è bellissimo. Abbiamo camminato lungo il fiume fino al "
           "vecchio ponte, e poi abbiamo pranzato in un piccolo caffè vicino al mercato."),
    "pt-BR": ("pf_dora", "O tempo está lindo hoje. Caminhamos pelo rio até a ponte velha, e "
              "depois almoçamos em um pequeno café perto da praça do mercado."),
    "hi": ("hf_alpha", "आज मौसम बहुत अच्छा है। हम नदी के किनारे पुराने पुल तक चले, और फिर "
           "बाज़ार के पास एक छोटे कैफ़े में खाना खाया।"),
    "zh": ("zf_xiaobei", "今天天气很好。我们沿着河边走到那座老桥，然后在市场附近的一家小咖啡馆吃了午饭，"
           "下午又去书店买了两本书。"),
    "ja": ("jf_alpha", "今日はとてもいい天気です。私たちは川沿いを歩いて古い橋まで行き、それから市場の近くの"
           "小さな喫茶店で昼ご飯を食べました。"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_speak_options(ap)
    args = ap.parse_args()
    runs = {lang: [] for lang in TEXTS}
    env = dict(os.environ, RUST_LOG="warn")
    for rep in range(args.reps):
        for lang, (voice, text) in TEXTS.items():
            r = tts_bench.run_measured(speak_cmd(args, voice), text, env)
            r["plan_ms_per_1000"] = r["plan_secs"] * 1000 * 1000 / max(1, r["chars"])
            runs[lang].append(r)
            print(f"rep {rep + 1} {lang}: RTF {r['rtf']:.2f}, first audio "
                  f"{r['first_audio_secs']:.3f} s, phonemes {r['plan_ms_per_1000']:.0f} ms/1000 chars",
                  file=sys.stderr, flush=True)
    med = {lang: {k: statistics.median(r[k] for r in rs)
                  for k in ("rtf", "first_audio_secs", "plan_ms_per_1000", "audio_secs")}
           for lang, rs in runs.items()}
    base = med["en-US"]
    print(f"| language ({args.reps} reps, median) | audio (s) | RTF | vs en-US | first audio (s) "
          f"| phonemization (ms / 1000 chars) | vs en-US |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for lang, m in med.items():
        print(f"| {lang} | {m['audio_secs']:.1f} | {m['rtf']:.2f} | {m['rtf'] / base['rtf']:.2f}× | "
              f"{m['first_audio_secs']:.3f} | {m['plan_ms_per_1000']:.0f} | "
              f"{m['plan_ms_per_1000'] / base['plan_ms_per_1000']:.2f}× |")


if __name__ == "__main__":
    main()
