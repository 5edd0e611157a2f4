//! Grapheme → phoneme with misaki (MIT, lexicons embedded), falling back to the `espeak-ng`
//! *program* for out-of-lexicon words. espeak-ng is GPL: calling the executable keeps it out of
//! the linked binary. A word neither can phonemize is an error, never silently dropped.

use std::cell::RefCell;
use std::process::Command;

use misaki_rs::fallback::FallbackError;
use misaki_rs::{Fallback, G2P, Language};

use super::error::TtsError;

/// The marker misaki puts where a word has no phonemes.
const UNKNOWN_MARKER: &str = "❓";

thread_local! {
    /// Words sent to the fallback during the current `phonemize` call on this thread, with the
    /// outcome. misaki's fallback hook is synchronous, so a thread-local scopes it per call.
    static FALLBACK_LOG: RefCell<Vec<(String, Result<String, String>)>> = const { RefCell::new(Vec::new()) };
}

/// Out-of-lexicon words through `espeak-ng -q --ipa`, IPA converted to Kokoro's phoneme set.
pub struct EspeakProgram {
    program: String,
    voice: &'static str,
}

impl EspeakProgram {
    pub fn new(program: impl Into<String>, british: bool) -> Self {
        Self {
            program: program.into(),
            voice: if british { "en" } else { "en-us" },
        }
    }

    fn run(&self, word: &str) -> Result<String, String> {
        let out = Command::new(&self.program)
            .args(["-q", "--ipa", "-v", self.voice, "--"])
            .arg(word)
            .output()
            .map_err(|e| {
                format!(
                    "the fallback program '{}' could not run ({e}); install it (Debian: apt-get install espeak-ng)",
                    self.program
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "'{}' exited with {}: {}",
                self.program,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let ipa = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let converted = espeak_ipa_to_kokoro(&ipa);
        if converted.is_empty() {
            return Err(format!("'{}' produced no phonemes", self.program));
        }
        Ok(converted)
    }
}

impl Fallback for EspeakProgram {
    fn phonemize(&self, word: &str) -> Result<String, FallbackError> {
        let result = self.run(word);
        FALLBACK_LOG.with(|log| log.borrow_mut().push((word.to_string(), result.clone())));
        result.map_err(|error| FallbackError::Espeak {
            word: word.to_string(),
            error,
        })
    }
}

/// espeak-ng's IPA → the phoneme alphabet Kokoro was trained on (misaki's conventions: diphthongs
/// as single capital letters, no length marks). Adapted from misaki's espeak fallback (MIT).
pub fn espeak_ipa_to_kokoro(ipa: &str) -> String {
    let mut s = ipa
        .trim()
        .trim_end_matches(['.', ',', '?', '!'])
        .replace('\u{200D}', "")
        .to_string();
    for (from, to) in [
        ("ʔˌn\u{0329}", "ʔn"),
        ("ʔn\u{0329}", "ʔn"),
        ("aɪ", "I"),
        ("aʊ", "W"),
        ("dʒ", "ʤ"),
        ("eɪ", "A"),
        ("tʃ", "ʧ"),
        ("ɔɪ", "Y"),
        ("əʊ", "Q"),
        ("oʊ", "O"),
        ("ə^l", "ᵊl"),
        ("ʲo", "jo"),
        ("ʲə", "jə"),
        ("ʲ", ""),
        ("x", "k"),
        ("ç", "k"),
        ("ɐ", "ə"),
        ("ɬ", "l"),
        ("ɜːɹ", "ɜɹ"),
        ("ɜː", "ɜ"),
        ("ɪə", "iə"),
        ("iː", "i"),
        ("uː", "u"),
        ("ɔː", "ɔ"),
        ("ɑː", "ɑ"),
        ("ː", ""),
        ("_", ""),
        ("əl", "ᵊl"),
        ("e", "A"),
        ("o", "ɔ"),
        ("r", "ɹ"),
        ("ɾ", "T"),
        ("ʔ", "t"),
        ("^", ""),
    ] {
        s = s.replace(from, to);
    }
    s.replace("ˈˈ", "ˈ").replace("ˌˌ", "ˌ")
}

/// Result of phonemizing one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Phonemized {
    pub phonemes: String,
    /// Words the lexicon did not know, which the fallback spoke.
    pub fallback_words: Vec<String>,
}

/// American and British G2P, built once per process (building one loads lexicons and a tagger).
pub struct Phonemizer {
    us: G2P,
    gb: G2P,
}

impl Phonemizer {
    pub fn new(espeak_program: &str) -> Self {
        Self {
            us: G2P::with_fallback(
                Language::EnglishUS,
                Some(Box::new(EspeakProgram::new(espeak_program, false))),
            ),
            gb: G2P::with_fallback(
                Language::EnglishGB,
                Some(Box::new(EspeakProgram::new(espeak_program, true))),
            ),
        }
    }

    pub fn phonemize(&self, text: &str, british: bool) -> Result<Phonemized, TtsError> {
        FALLBACK_LOG.with(|log| log.borrow_mut().clear());
        let g2p = if british { &self.gb } else { &self.us };
        let result = g2p.g2p(text);
        let log = FALLBACK_LOG.with(|log| std::mem::take(&mut *log.borrow_mut()));
        let (phonemes, _) = result.map_err(|e| TtsError::Phonemize {
            word: text.to_string(),
            reason: e.to_string(),
        })?;
        let mut fallback_words = Vec::new();
        for (word, outcome) in log {
            match outcome {
                Ok(_) => fallback_words.push(word),
                // Punctuation-only tokens carry nothing to say; a word with letters must be spoken.
                Err(reason) if word.chars().any(char::is_alphanumeric) => {
                    return Err(TtsError::Phonemize { word, reason });
                }
                Err(_) => {}
            }
        }
        let phonemes = phonemes
            .replace(UNKNOWN_MARKER, "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Phonemized {
            phonemes,
            fallback_words,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipa_conversion_matches_misaki_reference_forms() {
        assert_eq!(
            espeak_ipa_to_kokoro("kjˌuːzˌiːˈɛksdˌʌbəljˌuːvˈiː."),
            "kjˌuzˌiˈɛksdˌʌbᵊljˌuvˈi"
        );
        assert_eq!(espeak_ipa_to_kokoro("ɜː."), "ɜ");
        assert_eq!(
            espeak_ipa_to_kokoro("zoː\u{200D}ɹblˈe\u{200D}ɪksi\u{200D}ən"),
            "zɔɹblˈAksiən"
        );
    }
}
