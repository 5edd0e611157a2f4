//! The voice catalog contract: ids, names, languages, genders (what `list_voices` serves).
//!
//! Voice ids follow Kokoro's convention: the first letter is the language, the second the
//! gender (`af_heart` = American English, female, "Heart"). Pure code: the api validates voice ids
//! with it without loading the engine.

use serde::{Deserialize, Serialize};

/// The voice used when a call names none.
pub const DEFAULT_VOICE: &str = "af_heart";

/// Most voices one blend mixes.
pub const MAX_BLEND_VOICES: usize = 8;

/// The voices of a voice spec and their shares (summing to 1): a plain id is itself alone; a
/// blend `af_bella(2)+af_sky(1)` mixes their styles by weight (a weight left out is 1). The
/// error says what is wrong with which part; whether the ids exist is the caller's check.
pub fn parse_blend(spec: &str) -> Result<Vec<(String, f32)>, String> {
    let parts: Vec<&str> = spec.split('+').map(str::trim).collect();
    if parts.len() > MAX_BLEND_VOICES {
        return Err(format!(
            "a blend mixes at most {MAX_BLEND_VOICES} voices; {spec:?} names {}",
            parts.len()
        ));
    }
    let mut out: Vec<(String, f32)> = Vec::new();
    for part in parts {
        let (id, weight) = match part.split_once('(') {
            None => (part, 1.0),
            Some((id, rest)) => {
                let w = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("{part:?}: a weight is written id(2)"))?;
                let w: f32 = w
                    .trim()
                    .parse()
                    .map_err(|_| format!("{part:?}: the weight {w:?} is not a number"))?;
                (id.trim(), w)
            }
        };
        if id.is_empty() || id.contains([' ', '(', ')']) {
            return Err(format!("{part:?} is not a voice id"));
        }
        if !weight.is_finite() || weight <= 0.0 {
            return Err(format!("{part:?}: a weight must be a positive number"));
        }
        match out.iter_mut().find(|(v, _)| v == id) {
            Some((_, w)) => *w += weight,
            None => out.push((id.to_owned(), weight)),
        }
    }
    let total: f32 = out.iter().map(|(_, w)| w).sum();
    for (_, w) in &mut out {
        *w /= total;
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VoiceInfo {
    /// Identifier to pass as `voice_id`, e.g. `af_heart`.
    pub id: String,
    /// Human-readable name, e.g. `Heart`.
    pub name: String,
    /// BCP-47 language tag, e.g. `en-US`.
    pub language: String,
    /// Language in words, e.g. `American English`.
    pub language_name: String,
    /// `female` or `male`.
    pub gender: String,
}

/// How text in a language becomes the phonemes Kokoro was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G2p {
    /// misaki's lexicons (American or British), the espeak-ng program for unknown words.
    English { british: bool },
    /// The espeak-ng program in this voice, its IPA mapped to Kokoro's set as misaki does.
    Espeak(&'static str),
    /// Mandarin: word segmentation, phrase-aware pinyin, Kokoro's tone-arrow IPA.
    Mandarin,
    /// Japanese: MeCab words with UniDic's pronunciations, cutlet's IPA-like romaji.
    Japanese,
    /// No grapheme-to-phoneme conversion for this language in this build: refused, never read
    /// as another language.
    NotSpoken,
}

/// A language of the voice catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechLanguage {
    /// The first letter of its voices' ids.
    pub prefix: char,
    /// BCP-47 tag, e.g. `fr-FR`.
    pub tag: &'static str,
    pub name: &'static str,
    pub g2p: G2p,
}

impl SpeechLanguage {
    pub fn is_spoken(&self) -> bool {
        self.g2p != G2p::NotSpoken
    }
}

/// Kokoro's nine languages and how each is phonemized (espeak-ng voices as Kokoro's own
/// pipeline names them).
pub const LANGUAGES: &[SpeechLanguage] = &[
    lang(
        'a',
        "en-US",
        "American English",
        G2p::English { british: false },
    ),
    lang(
        'b',
        "en-GB",
        "British English",
        G2p::English { british: true },
    ),
    lang('e', "es", "Spanish", G2p::Espeak("es")),
    lang('f', "fr-FR", "French", G2p::Espeak("fr-fr")),
    lang('h', "hi", "Hindi", G2p::Espeak("hi")),
    lang('i', "it", "Italian", G2p::Espeak("it")),
    lang('j', "ja", "Japanese", G2p::Japanese),
    lang('p', "pt-BR", "Brazilian Portuguese", G2p::Espeak("pt-br")),
    lang('z', "zh", "Mandarin Chinese", G2p::Mandarin),
];

const fn lang(prefix: char, tag: &'static str, name: &'static str, g2p: G2p) -> SpeechLanguage {
    SpeechLanguage {
        prefix,
        tag,
        name,
        g2p,
    }
}

/// The language a tag names (case-insensitive; `en`, `fr`, `pt` and `zh-CN` as the catalog's).
pub fn language_of_tag(tag: &str) -> Option<&'static SpeechLanguage> {
    let t = tag.trim().to_ascii_lowercase();
    let t = match t.as_str() {
        "en" => "en-us",
        "fr" => "fr-fr",
        "pt" => "pt-br",
        "zh-cn" | "cmn" => "zh",
        other => other,
    };
    LANGUAGES.iter().find(|l| l.tag.eq_ignore_ascii_case(t))
}

/// The language of a voice spec (a blend's first voice), by its id's first letter.
pub fn language_of_voice(voice_spec: &str) -> Option<&'static SpeechLanguage> {
    let first = voice_spec.trim_start().chars().next()?;
    LANGUAGES.iter().find(|l| l.prefix == first)
}

/// The tags of the languages spoken, for messages.
pub fn spoken_tags() -> String {
    LANGUAGES
        .iter()
        .filter(|l| l.is_spoken())
        .map(|l| l.tag)
        .collect::<Vec<_>>()
        .join(", ")
}

impl VoiceInfo {
    /// Derives the catalog entry from an id; `None` when the id does not follow the convention.
    pub fn from_id(id: &str) -> Option<Self> {
        let mut chars = id.chars();
        let lang = chars.next()?;
        let gender = match chars.next()? {
            'f' => "female",
            'm' => "male",
            _ => return None,
        };
        let rest = id.get(2..)?.strip_prefix('_')?;
        if rest.is_empty() {
            return None;
        }
        let language = LANGUAGES.iter().find(|l| l.prefix == lang)?;
        let (tag, lang_name) = (language.tag, language.name);
        let name = rest
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ");
        Some(Self {
            id: id.to_string(),
            name,
            language: tag.to_string(),
            language_name: lang_name.to_string(),
            gender: gender.to_string(),
        })
    }

    /// British voices are phonemized with the British lexicon, every other voice with American.
    pub fn is_british(&self) -> bool {
        self.id.starts_with('b')
    }
}

/// The `n` ids closest to `wanted` by edit distance (ties by name), for "did you mean" errors.
pub fn nearest_ids<'a>(wanted: &str, ids: impl Iterator<Item = &'a str>, n: usize) -> Vec<String> {
    let wanted = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = ids.map(|id| (levenshtein(&wanted, id), id)).collect();
    scored.sort();
    scored
        .into_iter()
        .take(n)
        .map(|(_, id)| id.to_string())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_language_and_gender() {
        let v = VoiceInfo::from_id("af_heart").expect("valid id");
        assert_eq!(
            (v.name.as_str(), v.language.as_str(), v.gender.as_str()),
            ("Heart", "en-US", "female")
        );
        let v = VoiceInfo::from_id("bm_george").expect("valid id");
        assert_eq!(
            (v.language_name.as_str(), v.gender.as_str()),
            ("British English", "male")
        );
        assert!(v.is_british());
        assert_eq!(
            VoiceInfo::from_id("zf_xiaobei").expect("valid").language,
            "zh"
        );
        assert!(VoiceInfo::from_id("xx_nope").is_none());
        assert!(VoiceInfo::from_id("af").is_none());
    }

    #[test]
    fn nearest_ids_prefers_small_edits() {
        let ids = ["af_heart", "af_bella", "am_adam", "bf_emma"];
        assert_eq!(nearest_ids("af_hart", ids.into_iter(), 2)[0], "af_heart");
    }

    #[test]
    fn blends_are_read_by_weight_and_bad_ones_named() {
        assert_eq!(
            parse_blend("af_heart").expect("plain"),
            vec![("af_heart".to_string(), 1.0)]
        );
        let mix = parse_blend("af_bella(3) + af_sky").expect("blend");
        assert_eq!(mix[0].0, "af_bella");
        assert!((mix[0].1 - 0.75).abs() < 1e-6 && (mix[1].1 - 0.25).abs() < 1e-6);
        for (bad, needle) in [
            ("af_bella(0)+af_sky", "positive"),
            ("af_bella(x)", "not a number"),
            ("af_bella(2", "id(2)"),
            ("+af_sky", "not a voice id"),
            (&"a_b+".repeat(9), "at most 8"),
        ] {
            let e = parse_blend(bad).expect_err(bad);
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
