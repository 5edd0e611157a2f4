#!/usr/bin/env python3
"""Makes the Mandarin reading tables of crates/tts/src/mandarin from pypinyin 0.55.0 and
misaki 0.9.4 (`pip install 'misaki[zh]==0.9.4'`, as deploy/install-deps.sh does in the test venv):

  char_pinyin.tsv    char<TAB>pinyin        first reading of every U+4E00..U+9FFF character
  phrase_pinyin.tsv  phrase<TAB>pinyin ...  pypinyin's phrase readings (first reading each)
  syllable_ipa.tsv   pinyin<TAB>ipa         misaki's IPA of every syllable above, tone arrows in

Pinyin is TONE3 with the neutral tone as 5, as misaki asks pypinyin for it. Run:
  python3 make_tables.py crates/tts/data/zh
"""
import os
import re
import sys

from misaki.zh import ZHG2P
from pypinyin import Style
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
from pypinyin.style import convert as convert_style


def tone3(p: str) -> str:
    s = convert_style(p, Style.TONE3, True, default=p)
    return s if re.search(r"\d", s) else s + "5"


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    chars = {
        chr(c): tone3(v.split(",")[0])
        for c, v in sorted(PINYIN_DICT.items())
        if 0x4E00 <= c <= 0x9FFF
    }
    phrases = {k: [tone3(p[0]) for p in v] for k, v in sorted(PHRASES_DICT.items())}
    syllables = sorted(set(chars.values()) | {p for v in phrases.values() for p in v})
    with open(f"{out}/char_pinyin.tsv", "w", encoding="utf8") as f:
        for c, p in chars.items():
            f.write(f"{c}\t{p}\n")
    with open(f"{out}/phrase_pinyin.tsv", "w", encoding="utf8") as f:
        for k, v in phrases.items():
            f.write(f"{k}\t{' '.join(v)}\n")
    with open(f"{out}/syllable_ipa.tsv", "w", encoding="utf8") as f:
        for s in syllables:
            # U+032F (non-syllabic mark) is removed by misaki after joining; removed here at once.
            f.write(f"{s}\t{ZHG2P.py2ipa(s).replace(chr(0x32F), '')}\n")
    print(len(chars), "characters;", len(phrases), "phrases;", len(syllables), "syllables")


if __name__ == "__main__":
    main()
