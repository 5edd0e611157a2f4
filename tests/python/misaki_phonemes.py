"""Reference phonemes for the espeak-ng languages: misaki's EspeakG2P (Kokoro's own G2P for
Spanish, French, Hindi, Italian and Brazilian Portuguese), from PyPI in the test venv.

Reads a JSON list of [espeak_language, sentence] on stdin; prints a JSON list of phoneme strings.
"""

import json
import sys

from misaki import espeak


def main() -> None:
    pairs = json.load(sys.stdin)
    g2ps = {}
    out = []
    for language, sentence in pairs:
        if language not in g2ps:
            g2ps[language] = espeak.EspeakG2P(language=language)
        out.append(g2ps[language](sentence)[0])
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
