//! Mandarin phonemes as Kokoro's Mandarin voices were trained on them (misaki 0.9's zh G2P for
//! Kokoro v1.0): Arabic numbers read as Chinese numerals ([`numbers`]), full-width punctuation
//! mapped to Kokoro's, each run of Han characters cut into words (jieba), each word's pinyin
//! (pypinyin's phrase readings, longest phrase first, else each character's first reading)
//! and each syllable's IPA with its tone as an arrow (→ ↗ ↓ ↘); words are separated by spaces.
//!
//! Where the reference passes text through unread, this reads it or refuses it: Latin words in
//! Chinese text are read by the English G2P, and anything else the model has no phoneme for
//! (a character without a Mandarin reading, a symbol) is an error naming it.
//!
//! The readings are pypinyin 0.55's tables (MIT; `data/zh/`, with how to make them again).

pub mod numbers;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::LazyLock;

use crate::error::TtsError;

/// First reading (pinyin, tone number 1–5) of every Han character pypinyin knows.
const CHAR_PINYIN: &str = include_str!("../../data/zh/char_pinyin.tsv");
/// Readings of words and phrases whose characters read otherwise together (银行 → yin2 hang2).
const PHRASE_PINYIN: &str = include_str!("../../data/zh/phrase_pinyin.tsv");
/// IPA of every syllable the tables above produce, tone arrows included.
const SYLLABLE_IPA: &str = include_str!("../../data/zh/syllable_ipa.tsv");

struct Tables {
    jieba: jieba_rs::Jieba,
    chars: HashMap<char, &'static str>,
    /// Phrase → its syllables, space-separated; ordered, so prefixes are a range lookup.
    phrases: BTreeMap<&'static str, &'static str>,
    syllables: HashMap<&'static str, &'static str>,
}

/// Built on first use (about a quarter of a second; the word list is jieba's own).
static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let rows = |table: &'static str| {
        table
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect::<Vec<_>>()
    };
    Tables {
        jieba: jieba_rs::Jieba::new(),
        chars: rows(CHAR_PINYIN)
            .into_iter()
            .filter_map(|(c, py)| Some((c.chars().next()?, py)))
            .collect(),
        phrases: rows(PHRASE_PINYIN).into_iter().collect(),
        syllables: rows(SYLLABLE_IPA).into_iter().collect(),
    }
});

/// Han characters as the reference takes them (CJK Unified Ideographs).
fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// Phonemes of Mandarin `text`; Latin words go to `english`.
pub fn phonemize(
    text: &str,
    english: impl Fn(&str) -> Result<String, TtsError>,
) -> Result<String, TtsError> {
    let text = map_punctuation(&numbers::an2cn(text));
    let tables = &*TABLES;
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(first) = rest.chars().next() {
        let han = is_han(first);
        let end = rest
            .char_indices()
            .find(|(_, c)| is_han(*c) != han)
            .map_or(rest.len(), |(i, _)| i);
        let (run, after) = rest.split_at(end);
        if han {
            let words: Result<Vec<String>, TtsError> = tables
                .jieba
                .cut(run, true)
                .into_iter()
                .map(|w| tables.word(w.word))
                .collect();
            out.push_str(&words?.join(" "));
        } else {
            out.push_str(&latin_words(run, !out.is_empty(), &english)?);
        }
        rest = after;
    }
    Ok(out.trim_end().to_string())
}

/// A run without Han characters: its Latin words read by `english`, the rest as it is.
/// `preceded`: something comes before the run.
fn latin_words(
    run: &str,
    preceded: bool,
    english: &impl Fn(&str) -> Result<String, TtsError>,
) -> Result<String, TtsError> {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| -> Result<(), TtsError> {
        if !word.is_empty() {
            let spoken = english(word)?;
            // Spaced off the Chinese around it, so the model hears a word boundary.
            if (preceded || !out.is_empty()) && !out.ends_with(' ') {
                out.push(' ');
            }
            out.push_str(spoken.trim());
            out.push(' ');
            word.clear();
        }
        Ok(())
    };
    for c in run.chars() {
        if c.is_ascii_alphabetic() || (!word.is_empty() && matches!(c, '\'' | '-')) {
            word.push(c);
        } else {
            flush(&mut word, &mut out)?;
            out.push(c);
        }
    }
    flush(&mut word, &mut out)?;
    Ok(out)
}

impl Tables {
    /// One jieba word: pypinyin's forward maximum matching over its phrases (the longest
    /// phrase that starts here, else one character), then each syllable's IPA.
    fn word(&self, word: &str) -> Result<String, TtsError> {
        let mut out = String::new();
        let mut rest = word;
        while !rest.is_empty() {
            let mut phrase = None;
            for (i, c) in rest.char_indices() {
                let candidate = &rest[..i + c.len_utf8()];
                if !self.is_phrase_prefix(candidate) {
                    break;
                }
                if let Some(readings) = self.phrases.get(candidate) {
                    phrase = Some((candidate.len(), *readings));
                }
            }
            let taken = match phrase {
                Some((len, readings)) => {
                    for syllable in readings.split(' ') {
                        out.push_str(self.ipa(syllable, word)?);
                    }
                    len
                }
                None => {
                    let c = rest.chars().next().unwrap_or_default();
                    let syllable = self.chars.get(&c).ok_or_else(|| TtsError::Phonemize {
                        word: c.to_string(),
                        reason: "this character has no Mandarin reading".into(),
                    })?;
                    out.push_str(self.ipa(syllable, word)?);
                    c.len_utf8()
                }
            };
            rest = &rest[taken..];
        }
        Ok(out)
    }

    fn is_phrase_prefix(&self, prefix: &str) -> bool {
        self.phrases
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    fn ipa(&self, syllable: &str, word: &str) -> Result<&'static str, TtsError> {
        self.syllables
            .get(syllable)
            .copied()
            .ok_or_else(|| TtsError::Phonemize {
                word: word.to_string(),
                reason: format!("no phonemes for the syllable {syllable}"),
            })
    }
}

/// Full-width punctuation as Kokoro's Mandarin voices know it.
fn map_punctuation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '、' | '，' => out.push_str(", "),
            '。' | '．' => out.push_str(". "),
            '！' => out.push_str("! "),
            '：' => out.push_str(": "),
            '；' => out.push_str("; "),
            '？' => out.push_str("? "),
            '«' | '《' | '「' | '【' => out.push_str(" “"),
            '»' | '》' | '」' | '】' => out.push_str("” "),
            '（' => out.push_str(" ("),
            '）' => out.push_str(") "),
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_english(word: &str) -> Result<String, TtsError> {
        panic!("no English expected, got {word:?}")
    }

    #[test]
    fn phrases_choose_the_reading_and_words_are_spaced() {
        assert_eq!(
            phonemize("他长大了，长得很高。", no_english).expect("phonemes"),
            "tʰa→ ꭧa↓ŋta↘ lɤ, ꭧa↓ŋtɤ↗ xə↓n kau→."
        );
        assert_eq!(
            phonemize("行人在银行门口排队。", no_english).expect("phonemes"),
            "ɕi↗ŋɻə↗n ʦai↘ i↗nxa↗ŋ mə↗nkʰou↓ pʰai↗twei↘."
        );
    }

    #[test]
    fn latin_words_are_read_in_english_and_unknown_characters_named() {
        let english = |w: &str| Ok(format!("<{w}>"));
        assert_eq!(
            phonemize("用iPhone打电话", english).expect("phonemes"),
            "jʊ↘ŋ <iPhone> ta↓tjɛ↘nxwa↘"
        );
        match phonemize("嗧", no_english) {
            Err(TtsError::Phonemize { word, .. }) => assert_eq!(word, "嗧"),
            other => panic!("{other:?}"),
        }
    }
}
