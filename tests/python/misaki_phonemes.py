"""Reference phonemes: misaki's EspeakG2P (Kokoro's own G2P for Spanish, French, Hindi, Italian
and Brazilian Portuguese) and its ZHG2P (Mandarin, as Kokoro v1.0 was trained: `zh`), from PyPI
in the test venv.

Reads a JSON list of [language, sentence] on stdin (an espeak-ng language, or `zh`); prints a
JSON list of phoneme strings.
"""

import json
import sys

from misaki import espeak, zh


def main() -> None:
    pairs = json.load(sys.stdin)
    g2ps = {}
    out = []
    for language, sentence in pairs:
        if language not in g2ps:
            g2ps[language] = zh.ZHG2P() if language == "zh" else espeak.EspeakG2P(language=language)
        out.append(g2ps[language](sentence)[0])
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
