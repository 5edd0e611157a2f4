//! Grapheme → phoneme with misaki (MIT, lexicons embedded), falling back to the `espeak-ng`
//! *program* for out-of-lexicon words. espeak-ng is GPL: calling the executable keeps it out of
//! the linked binary. A word neither can phonemize is an error, never silently dropped.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;

use misaki_rs::fallback::FallbackError;
use misaki_rs::{Fallback, G2P, Language};

use avb_workflows::speech::voices::G2p;

use super::error::TtsError;
use super::japanese::JapaneseG2p;

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

/// Punctuation that ends a clause: kept in the phonemes (Kokoro pauses on it), never sent to
/// espeak-ng.
const CLAUSE_PUNCTUATION: &str = ",.;:!?¡¿—…\"«»“”";

/// Drops espeak-ng's language-switch flags, `(en)` … `(fr)`, around words it read in another
/// language (the reference removes them the same way).
fn remove_language_flags(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut in_flag = false;
    for c in ipa.chars() {
        match c {
            '(' => in_flag = true,
            ')' => in_flag = false,
            c if !in_flag => out.push(c),
            _ => {}
        }
    }
    out
}

/// espeak-ng's IPA (ties written `^`) → Kokoro's phonemes for the languages espeak-ng reads,
/// as misaki's `EspeakG2P` maps them (MIT): tied pairs become single letters, ties and
/// hyphens go.
pub fn espeak_ipa_to_kokoro_in(ipa: &str) -> String {
    // misaki applies these in sorted order; none is a prefix of another, so order is moot.
    const E2M: [(&str, &str); 11] = [
        ("a^ɪ", "I"),
        ("a^ʊ", "W"),
        ("d^z", "ʣ"),
        ("d^ʒ", "ʤ"),
        ("e^ɪ", "A"),
        ("o^ʊ", "O"),
        ("s^s", "S"),
        ("t^s", "ʦ"),
        ("t^ʃ", "ʧ"),
        ("ə^ʊ", "Q"),
        ("ɔ^ɪ", "Y"),
    ];
    let mut s = ipa.split_whitespace().collect::<Vec<_>>().join(" ");
    for (from, to) in E2M {
        s = s.replace(from, to);
    }
    s.replace(['^', '-'], "")
}

/// American and British G2P, built once per process (building one loads lexicons and a
/// tagger), the espeak-ng program for the other languages, and Japanese's dictionary (opened on
/// the first Japanese text).
pub struct Phonemizer {
    us: G2P,
    gb: G2P,
    espeak_program: String,
    japanese: JapaneseG2p,
}

impl Phonemizer {
    /// Japanese text is refused until [`Phonemizer::with_japanese_dictionary`] says where the
    /// dictionary is.
    pub fn new(espeak_program: &str) -> Self {
        Self {
            espeak_program: espeak_program.to_owned(),
            japanese: JapaneseG2p::new(None),
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

    /// Reads Japanese with the unidic-lite dictionary in `dir` (opened on first use).
    pub fn with_japanese_dictionary(mut self, dir: PathBuf) -> Self {
        self.japanese = JapaneseG2p::new(Some(dir));
        self
    }

    /// Phonemes of one sentence in `g2p`'s language.
    pub fn phonemize(&self, text: &str, g2p: G2p) -> Result<Phonemized, TtsError> {
        match g2p {
            G2p::English { british } => self.english(text, british),
            G2p::Espeak(voice) => Ok(Phonemized {
                phonemes: self.espeak_sentence(text, voice)?,
                fallback_words: Vec::new(),
            }),
            G2p::Mandarin => Ok(Phonemized {
                phonemes: crate::mandarin::phonemize(text, |word| {
                    self.english(word, false).map(|p| p.phonemes)
                })?,
                fallback_words: Vec::new(),
            }),
            G2p::Japanese => Ok(Phonemized {
                phonemes: self
                    .japanese
                    .phonemize(text, |word| self.english(word, false).map(|p| p.phonemes))?,
                fallback_words: Vec::new(),
            }),
            G2p::NotSpoken => Err(TtsError::invalid(
                "language",
                "this language cannot be read yet (no grapheme-to-phoneme conversion in this build)",
            )),
        }
    }

    /// A sentence read by espeak-ng in `voice`, clause by clause with its punctuation kept (as
    /// the reference's phonemizer does), the IPA mapped as misaki's `EspeakG2P` maps it.
    fn espeak_sentence(&self, text: &str, voice: &str) -> Result<String, TtsError> {
        let mut out = String::new();
        let mut clause = String::new();
        for c in text.chars() {
            if CLAUSE_PUNCTUATION.contains(c) {
                self.espeak_clause(&clause, voice, &mut out)?;
                clause.clear();
                // Kept as Kokoro writes them; the inverted marks open a clause and say nothing.
                match c {
                    '¡' | '¿' => {}
                    '«' => out.push('“'),
                    '»' => out.push('”'),
                    c => out.push(c),
                }
            } else {
                clause.push(c);
            }
        }
        self.espeak_clause(&clause, voice, &mut out)?;
        Ok(out.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn espeak_clause(&self, clause: &str, voice: &str, out: &mut String) -> Result<(), TtsError> {
        // Parentheses would read as espeak-ng's language-switch flags.
        let clause = clause.replace(['(', ')'], " ");
        let clause = clause.trim();
        if clause.is_empty() {
            return Ok(());
        }
        let failed = |reason: String| TtsError::Phonemize {
            word: clause.to_string(),
            reason,
        };
        let run = Command::new(&self.espeak_program)
            .args(["-q", "--ipa", "--tie=^", "-v", voice, "--"])
            .arg(clause)
            .output()
            .map_err(|e| {
                failed(format!(
                    "'{}' could not run ({e}); install it (Debian: apt-get install espeak-ng)",
                    self.espeak_program
                ))
            })?;
        if !run.status.success() {
            return Err(failed(format!(
                "'{}' -v {voice} exited with {}: {}",
                self.espeak_program,
                run.status,
                String::from_utf8_lossy(&run.stderr).trim()
            )));
        }
        let ipa = String::from_utf8_lossy(&run.stdout);
        let phonemes = espeak_ipa_to_kokoro_in(&remove_language_flags(&ipa));
        if phonemes.trim().is_empty() && clause.chars().any(char::is_alphanumeric) {
            return Err(failed(format!("espeak-ng ({voice}) produced no phonemes")));
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(phonemes.trim());
        Ok(())
    }

    fn english(&self, text: &str, british: bool) -> Result<Phonemized, TtsError> {
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
    fn espeak_languages_map_ties_and_drop_flags_as_misaki_does() {
        // espeak-ng 1.51 `-v es --ipa --tie=^`, and `-v hi` switching to English for a word.
        assert_eq!(
            espeak_ipa_to_kokoro_in("el nˈiɲo tjˈene lˈet^ʃe i ɣitˈara"),
            "el nˈiɲo tjˈene lˈeʧe i ɣitˈara"
        );
        assert_eq!(
            espeak_ipa_to_kokoro_in("a^ʊʒowɾ-dˈu^ɪ t^s d^z"),
            "Wʒowɾdˈuɪ ʦ ʣ"
        );
        assert_eq!(
            remove_language_flags("(^e^n)bɔːnʒˈʊ^ə(^h^i) nəmˈʌsteː"),
            "bɔːnʒˈʊ^ə nəmˈʌsteː"
        );
    }

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
