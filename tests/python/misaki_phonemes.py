"""Reference phonemes: misaki's EspeakG2P (Kokoro's own G2P for Spanish, French, Hindi, Italian
and Brazilian Portuguese), its ZHG2P (Mandarin, as Kokoro v1.0 was trained: `zh`) and its
default Japanese G2P (`ja`: cutlet over MeCab with the unidic-lite dictionary), from PyPI in the
test venv.

Reads a JSON list of [language, sentence] on stdin (an espeak-ng language, `zh` or `ja`); prints
a JSON list of phoneme strings.
"""

import json
import sys

from misaki import espeak, zh


def japanese():
    """misaki's `ja.JAG2P()`, whose default is `cutlet.Cutlet()` called as it is.

    `misaki.ja` imports pyopenjtalk, which only its other (non-default) path uses and which
    builds from source, so the cutlet module is imported directly. Kokoro v1.0 was trained with
    unidic-lite (misaki's `ja` extra at the time); fugashi would prefer the `unidic` package
    when one is installed, so it is pointed at unidic-lite's dictionary.
    """
    import unidic_lite

    try:
        import unidic

        unidic.DICDIR = unidic_lite.DICDIR
    except ImportError:
        pass
    from misaki.cutlet import Cutlet

    return Cutlet()


def main() -> None:
    pairs = json.load(sys.stdin)
    g2ps = {}
    out = []
    for language, sentence in pairs:
        if language not in g2ps:
            if language == "zh":
                g2ps[language] = zh.ZHG2P()
            elif language == "ja":
                g2ps[language] = japanese()
            else:
                g2ps[language] = espeak.EspeakG2P(language=language)
        out.append(g2ps[language](sentence)[0])
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
