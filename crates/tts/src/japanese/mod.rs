//! Japanese phonemes as Kokoro's Japanese voices were trained on them: misaki 0.9's default
//! Japanese G2P, cutlet over MeCab with the unidic-lite 1.0.8 dictionary (UniDic 2.1.2). The
//! text is normalised (a wave dash before a number reads から, NFKC, three quotes to ASCII),
//! each run of digits becomes kana ([`numbers`]), MeCab cuts the text into words with their
//! pronunciation ([`mecab`]), neighbouring words of one character type that misaki's word list
//! has as one word are joined, and each word's kana become cutlet's IPA-like romaji: palatalised
//! consonants (`kʲ`), `ɯ`/`ɨ`, long vowels `ː`, っ as `ʔ`, ん assimilated to what follows, no
//! pitch accent. Words are separated by spaces; full-width punctuation becomes Kokoro's.
//!
//! Where the reference passes through or drops what the model cannot say, this reads it or
//! refuses it:
//! - Latin words (`café` too) are read by the English G2P (the reference passes ASCII letters
//!   through, most of which are not in Kokoro's vocabulary, and drops accented words).
//! - A word without a reading (a kanji, letter or emoji the dictionary does not know, a symbol
//!   such as ★ or %) is an error naming it; the reference drops it silently.
//! - Punctuation Kokoro has no token for (brackets, including the « » the reference writes for
//!   parentheses, dashes other than —, `~`) is left out, as the model leaves it out.
//! - A number of ten digits or more is read digit by digit; the reference fails on it.
//! - ゝ repeats the kana before it; the reference writes that kana itself, unread.
//!
//! The dictionary (259 MB in `$AVB_DATA_DIR/assets/unidic-lite`, from `deploy/fetch_assets.py`)
//! is opened on the first Japanese text a process reads; misaki's word list (Apache-2.0,
//! `data/ja/`) is embedded.

pub mod mecab;
pub mod numbers;

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

use crate::error::TtsError;
use mecab::{Morpheme, Tagger};

/// The dictionary's directory under the assets directory.
pub const DICTIONARY_DIR: &str = "unidic-lite";

/// misaki's list of words cutlet keeps together when MeCab cuts them apart.
const WORD_LIST: &str = include_str!("../../data/ja/ja_words.txt");

/// The word list, sorted for binary search, and its longest entry in bytes.
static WORDS: LazyLock<(Vec<&'static str>, usize)> = LazyLock::new(|| {
    let mut words: Vec<&str> = WORD_LIST
        .lines()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    words.sort_unstable();
    words.dedup();
    let longest = words.iter().map(|w| w.len()).max().unwrap_or(0);
    (words, longest)
});

fn is_listed_word(word: &str) -> bool {
    WORDS.0.binary_search(&word).is_ok()
}

/// Phonemes Kokoro reads that the romaji tables write.
const PHONEMES: &str = "aiɯeokʲɡsɕʥzʣɨtdʨʦnɲhbpçɸmjɾβvᵝːʔɴŋ";
/// Punctuation in Kokoro's vocabulary that the reference writes.
const PUNCTUATION: &str = "!\"(),.:;?—“”…";

/// Japanese text to phonemes, with the dictionary opened on first use.
pub struct JapaneseG2p {
    dictionary: Option<PathBuf>,
    tagger: Mutex<Option<Arc<Tagger>>>,
}

impl JapaneseG2p {
    /// `dictionary`: the unidic-lite directory; `None` refuses Japanese text.
    pub fn new(dictionary: Option<PathBuf>) -> Self {
        Self {
            dictionary,
            tagger: Mutex::new(None),
        }
    }

    /// The dictionary, opened by the first caller. A failure is not kept: a dictionary
    /// installed later is found by the next text.
    fn tagger(&self) -> Result<Arc<Tagger>, TtsError> {
        let dir = self.dictionary.as_deref().ok_or_else(|| {
            TtsError::Config(
                "no Japanese dictionary configured: run `python3 deploy/fetch_assets.py`".into(),
            )
        })?;
        let mut slot = self
            .tagger
            .lock()
            .map_err(|_| TtsError::Config("the Japanese dictionary failed to load".into()))?;
        if let Some(tagger) = slot.as_ref() {
            return Ok(Arc::clone(tagger));
        }
        let started = std::time::Instant::now();
        let tagger = Arc::new(Tagger::open(dir)?);
        tracing::info!(
            dictionary = %dir.display(),
            millis = started.elapsed().as_millis(),
            "Japanese dictionary loaded"
        );
        *slot = Some(Arc::clone(&tagger));
        Ok(tagger)
    }

    /// Phonemes of Japanese `text`; Latin words go to `english`.
    pub fn phonemize(
        &self,
        text: &str,
        english: impl Fn(&str) -> Result<String, TtsError>,
    ) -> Result<String, TtsError> {
        let text = normalize(text);
        if text.trim().is_empty() {
            return Ok(String::new());
        }
        let tagger = self.tagger()?;
        let morphemes = tagger.parse(&text)?;
        romanize(&morphemes, &english)
    }
}

/// cutlet's normalisation, then every run of digits as ` ` + its kana.
fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut s = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '〜' | '～' if chars.get(i + 1).copied().is_some_and(is_decimal_digit) => {
                s.push_str("から");
            }
            c => s.push(phonetic_extension(c).unwrap_or(c)),
        }
    }
    // mojimoji's full-width to half-width pass after NFKC changes only these three.
    let s: String = s
        .nfkc()
        .map(|c| match c {
            '‘' => '`',
            '’' => '\'',
            '”' => '"',
            c => c,
        })
        .collect();
    let mut out = String::with_capacity(s.len() * 2);
    let mut rest = s.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let run = &rest[start..];
        let end = run.find(|c: char| !c.is_ascii_digit()).unwrap_or(run.len());
        out.push(' ');
        out.push_str(&numbers::digits_to_kana(&run[..end]));
        rest = &run[end..];
    }
    out.push_str(rest);
    out
}

/// Decimal digits that NFKC turns into ASCII ones (full-width, mathematical, segmented); the
/// reference takes any decimal digit, but cannot read the other scripts' digits either.
fn is_decimal_digit(c: char) -> bool {
    matches!(c, '0'..='9' | '０'..='９' | '\u{1D7CE}'..='\u{1D7FF}' | '\u{1FBF0}'..='\u{1FBF9}')
}

/// Small katakana for Ainu (ㇰ … ㇿ) as the full-size kana cutlet reads them as.
fn phonetic_extension(c: char) -> Option<char> {
    const FULL: [char; 16] = [
        'ク', 'シ', 'ス', 'ト', 'ヌ', 'ハ', 'ヒ', 'フ', 'ヘ', 'ホ', 'ム', 'ラ', 'リ', 'ル', 'レ',
        'ロ',
    ];
    let i = (c as u32).checked_sub(0x31F0)?;
    FULL.get(usize::try_from(i).ok()?).copied()
}

/// jaconv's kata2hira: katakana to hiragana (ヷ–ヺ have no hiragana and stay).
fn kata2hira(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ァ'..='ヶ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            'ヽ' => 'ゝ',
            'ヾ' => 'ゞ',
            c => c,
        })
        .collect()
}

/// A word as cutlet sees it: its surface, its reading in hiragana and a character type (6 for
/// words the dictionary knows and katakana, else MeCab's class of its first character).
#[derive(Debug, Clone)]
struct Word {
    surface: String,
    hira: String,
    char_type: u32,
    spaced: bool,
    latin: bool,
}

const SYMBOL: u32 = 3;
const KANA: u32 = 6;
const KATAKANA: u32 = 7;

/// MeCab's words → cutlet's words → phonemes.
fn romanize(
    morphemes: &[Morpheme<'_>],
    english: &impl Fn(&str) -> Result<String, TtsError>,
) -> Result<String, TtsError> {
    let words: Vec<Word> = morphemes
        .iter()
        .map(|m| {
            let reading = [m.pron.as_str(), m.kana.as_str(), m.surface]
                .into_iter()
                .find(|r| !r.is_empty())
                .unwrap_or_default();
            Word {
                surface: m.surface.to_string(),
                hira: kata2hira(reading),
                char_type: if m.char_type == KATAKANA || !m.unknown {
                    KANA
                } else {
                    m.char_type
                },
                spaced: m.spaced,
                latin: false,
            }
        })
        .collect();
    let words = join_latin(join_listed(&words));

    struct Token {
        text: String,
        space: bool,
    }
    let mut tokens: Vec<Token> = Vec::with_capacity(words.len());
    for word in &words {
        let roma = if word.latin {
            english(&word.surface)?.trim().to_string()
        } else {
            let roma = romaji_word(word)?;
            check_speakable(word, &roma)?;
            roma
        };
        let surface = word.surface.as_str();
        // cutlet's spacing around punctuation. Its tests are substring tests, so an empty
        // reading counts as an opening bracket.
        let space = if "「『«".contains(surface) || "([".contains(roma.as_str()) {
            if let Some(before) = tokens.last_mut() {
                before.space = true;
            }
            false
        } else if "」』»".contains(surface) || "]).,?!:".contains(roma.as_str()) {
            if let Some(before) = tokens.last_mut() {
                before.space = false;
            }
            true
        } else {
            roma != " "
        };
        tokens.push(Token { text: roma, space });
    }
    let mut out = String::new();
    for token in &tokens {
        out.push_str(&token.text.replace('っ', ""));
        if token.space {
            out.push(' ');
        }
    }
    let out = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('(', "«")
        .replace(')', "»");
    Ok(join_sokuon(&out)
        .chars()
        .filter(|&c| PUNCTUATION.contains(c) || !is_unvoiced_punctuation(c))
        .collect())
}

/// cutlet's grouping: from each word, the longest run of words of its character type whose
/// surfaces together are in misaki's word list becomes one word.
fn join_listed(words: &[Word]) -> Vec<Word> {
    let longest = WORDS.1;
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let same_type = words[i..]
            .iter()
            .position(|w| w.char_type != words[i].char_type)
            .map_or(words.len(), |n| i + n);
        let mut joined = String::new();
        let mut candidates = Vec::new();
        for (j, w) in words.iter().enumerate().take(same_type).skip(i) {
            joined.push_str(&w.surface);
            if joined.len() > longest {
                break;
            }
            candidates.push((j + 1, joined.len()));
        }
        let end = candidates
            .iter()
            .rev()
            .find(|(_, len)| is_listed_word(&joined[..*len]))
            .map(|(j, _)| *j);
        match end {
            Some(end) => {
                out.push(Word {
                    surface: words[i..end].iter().map(|w| w.surface.as_str()).collect(),
                    hira: words[i..end].iter().map(|w| w.hira.as_str()).collect(),
                    ..words[i].clone()
                });
                i = end;
            }
            None => {
                out.push(words[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// Letters of the Latin alphabet, accented ones included (`café`).
fn is_latin(surface: &str) -> bool {
    !surface.is_empty()
        && surface.chars().all(|c| {
            c.is_ascii_alphabetic() || (('\u{C0}'..='\u{24F}').contains(&c) && c.is_alphabetic())
        })
}

/// Latin words, with the apostrophes and hyphens MeCab cuts out of them (`don't`, `e-mail`),
/// become one word for the English G2P.
fn join_latin(words: Vec<Word>) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut word = words[i].clone();
        i += 1;
        if !is_latin(&word.surface) {
            out.push(word);
            continue;
        }
        word.latin = true;
        loop {
            match (words.get(i), words.get(i + 1)) {
                (Some(next), _) if !next.spaced && is_latin(&next.surface) => {
                    word.surface.push_str(&next.surface);
                    i += 1;
                }
                (Some(mark), Some(next))
                    if !mark.spaced
                        && matches!(mark.surface.as_str(), "'" | "-")
                        && !next.spaced
                        && is_latin(&next.surface) =>
                {
                    word.surface.push_str(&mark.surface);
                    word.surface.push_str(&next.surface);
                    i += 2;
                }
                _ => break,
            }
        }
        out.push(word);
    }
    out
}

/// cutlet's romaji of one word.
fn romaji_word(word: &Word) -> Result<String, TtsError> {
    let surface = word.surface.as_str();
    if surface.is_ascii() {
        return Ok(surface.to_string());
    }
    if word.char_type == SYMBOL {
        return Ok(surface
            .chars()
            .map(|c| single(c).map_or_else(|| c.to_string(), str::to_string))
            .collect());
    }
    if word.char_type != KANA {
        return Ok(String::new());
    }
    let hira: Vec<char> = word.hira.chars().collect();
    let mut out = String::new();
    for (i, &c) in hira.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| hira[j]);
        out.push_str(&kana_romaji(before, c, hira.get(i + 1).copied()));
    }
    Ok(out)
}

/// cutlet's reading of one kana between its neighbours.
fn kana_romaji(before: Option<char>, c: char, after: Option<char>) -> String {
    const SMALL: &str = "ゃゅょぁぃぅぇぉ";
    match c {
        // ゝ repeats the kana before it; the reference returns that kana unread.
        'ゝ' | 'ヽ' => return before.and_then(single).unwrap_or_default().to_string(),
        'ゞ' => {
            return before
                .and_then(add_dakuten)
                .and_then(single)
                .unwrap_or_default()
                .to_string();
        }
        // 々 and 〃 repeat a span that cannot be told here.
        '〃' | '々' => return String::new(),
        _ => {}
    }
    if let Some(pair) = before.and_then(|b| digraph(b, c)) {
        return pair.to_string();
    }
    if after.is_some_and(|a| digraph(c, a).is_some()) {
        return String::new();
    }
    if let Some(small) = after.filter(|a| SMALL.contains(*a)) {
        if c == 'っ' {
            return String::new();
        }
        let small = single(small).unwrap_or_default();
        return match single(c) {
            Some(r) => {
                let mut r = r.to_string();
                r.pop();
                r + small
            }
            // The reference fails here (ー or ん before a small kana): read both.
            None => plain(c, after) + small,
        };
    }
    plain(c, after)
}

/// A kana's reading that no digraph or small kana decides.
fn plain(c: char, after: Option<char>) -> String {
    const SMALL: &str = "ゃゅょぁぃぅぇぉ";
    match c {
        c if SMALL.contains(c) => String::new(),
        'ー' => "ː".into(),
        'っ' => "ʔ".into(),
        'ん' => {
            let next = after.and_then(single).unwrap_or_default();
            if next.starts_with(['m', 'p', 'b']) {
                "m"
            } else if next.starts_with(['k', 'ɡ']) {
                "ŋ"
            } else if next.starts_with(['ɲ', 'ʨ', 'ʥ']) {
                "ɲ"
            } else if next.starts_with(['n', 't', 'd', 'ɾ', 'z']) {
                "n"
            } else {
                "ɴ"
            }
            .into()
        }
        c => single(c).unwrap_or_default().into(),
    }
}

fn add_dakuten(c: char) -> Option<char> {
    const PLAIN: &str = "かきくけこさしすせそたちつてとはひふへほ";
    const VOICED: &str = "がぎぐげござじずぜぞだぢづでどばびぶべぼ";
    let i = PLAIN.chars().position(|p| p == c)?;
    VOICED.chars().nth(i)
}

/// cutlet's table for one character: kana, and the punctuation it maps.
fn single(c: char) -> Option<&'static str> {
    Some(match c {
        'ぁ' | 'あ' => "a",
        'ぃ' | 'い' | 'ゐ' => "i",
        'ぅ' | 'う' => "ɯ",
        'ぇ' | 'え' | 'ゑ' => "e",
        'ぉ' | 'お' | 'を' => "o",
        'か' | 'ゕ' => "ka",
        'が' => "ɡa",
        'き' => "kʲi",
        'ぎ' => "ɡʲi",
        'く' => "kɯ",
        'ぐ' => "ɡɯ",
        'け' | 'ゖ' => "ke",
        'げ' => "ɡe",
        'こ' => "ko",
        'ご' => "ɡo",
        'さ' => "sa",
        'ざ' => "ʣa",
        'し' => "ɕi",
        'じ' | 'ぢ' => "ʥi",
        'す' => "sɨ",
        'ず' | 'づ' => "zɨ",
        'せ' => "se",
        'ぜ' => "ʣe",
        'そ' => "so",
        'ぞ' => "ʣo",
        'た' => "ta",
        'だ' => "da",
        'ち' => "ʨi",
        'つ' => "ʦɨ",
        'て' => "te",
        'で' => "de",
        'と' => "to",
        'ど' => "do",
        'な' => "na",
        'に' => "ɲi",
        'ぬ' => "nɯ",
        'ね' => "ne",
        'の' => "no",
        'は' => "ha",
        'ば' => "ba",
        'ぱ' => "pa",
        'ひ' => "çi",
        'び' => "bʲi",
        'ぴ' => "pʲi",
        'ふ' => "ɸɯ",
        'ぶ' => "bɯ",
        'ぷ' => "pɯ",
        'へ' => "he",
        'べ' => "be",
        'ぺ' => "pe",
        'ほ' => "ho",
        'ぼ' => "bo",
        'ぽ' => "po",
        'ま' => "ma",
        'み' => "mʲi",
        'む' => "mɯ",
        'め' => "me",
        'も' => "mo",
        'ゃ' | 'や' => "ja",
        'ゅ' | 'ゆ' => "jɯ",
        'ょ' | 'よ' => "jo",
        'ら' => "ɾa",
        'り' => "ɾʲi",
        'る' => "ɾɯ",
        'れ' => "ɾe",
        'ろ' => "ɾo",
        'ゎ' | 'わ' => "βa",
        'ゔ' => "vɯ",
        'ヷ' => "va",
        'ヸ' => "vʲi",
        'ヹ' => "ve",
        'ヺ' => "vo",
        '。' => ".",
        '、' | '，' => ",",
        '？' => "?",
        '！' => "!",
        '「' | '『' | '«' => "“",
        '」' | '』' | '»' => "”",
        '：' => ":",
        '；' => ";",
        '（' | '《' => "(",
        '）' | '》' => ")",
        '【' => "[",
        '】' => "]",
        '・' => " ",
        '～' | '〜' | '—' => "—",
        // A sound mark on its own says nothing.
        '\u{309A}' | '\u{3099}' => "",
        _ => return None,
    })
}

/// cutlet's table for two kana read as one sound.
fn digraph(a: char, b: char) -> Option<&'static str> {
    Some(match (a, b) {
        ('い', 'ぇ') => "je",
        ('う', 'ぃ') => "βi",
        ('う', 'ぇ') => "βe",
        ('う', 'ぉ') => "βo",
        ('き', 'ぇ') => "kʲe",
        ('き', 'ゃ') => "kʲa",
        ('き', 'ゅ') => "kʲɨ",
        ('き', 'ょ') => "kʲo",
        ('ぎ', 'ゃ') => "ɡʲa",
        ('ぎ', 'ゅ') => "ɡʲɨ",
        ('ぎ', 'ょ') => "ɡʲo",
        ('く', 'ぁ') => "kᵝa",
        ('く', 'ぃ') => "kᵝi",
        ('く', 'ぇ') => "kᵝe",
        ('く', 'ぉ') => "kᵝo",
        ('ぐ', 'ぁ') => "ɡᵝa",
        ('ぐ', 'ぃ') => "ɡᵝi",
        ('ぐ', 'ぇ') => "ɡᵝe",
        ('ぐ', 'ぉ') => "ɡᵝo",
        ('し', 'ぇ') => "ɕe",
        ('し', 'ゃ') => "ɕa",
        ('し', 'ゅ') => "ɕɨ",
        ('し', 'ょ') => "ɕo",
        ('じ', 'ぇ') => "ʥe",
        ('じ', 'ゃ') | ('ぢ', 'ゃ') => "ʥa",
        ('じ', 'ゅ') | ('ぢ', 'ゅ') => "ʥɨ",
        ('じ', 'ょ') | ('ぢ', 'ょ') => "ʥo",
        ('ち', 'ぇ') => "ʨe",
        ('ち', 'ゃ') => "ʨa",
        ('ち', 'ゅ') => "ʨɨ",
        ('ち', 'ょ') => "ʨo",
        ('つ', 'ぁ') => "ʦa",
        ('つ', 'ぃ') => "ʦʲi",
        ('つ', 'ぇ') => "ʦe",
        ('つ', 'ぉ') => "ʦo",
        ('て', 'ぃ') => "tʲi",
        ('て', 'ゅ') => "tʲɨ",
        ('で', 'ぃ') => "dʲi",
        ('で', 'ゅ') => "dʲɨ",
        ('と', 'ぅ') => "tɯ",
        ('ど', 'ぅ') => "dɯ",
        ('に', 'ぇ') => "ɲe",
        ('に', 'ゃ') => "ɲa",
        ('に', 'ゅ') => "ɲɨ",
        ('に', 'ょ') => "ɲo",
        ('ひ', 'ぇ') => "çe",
        ('ひ', 'ゃ') => "ça",
        ('ひ', 'ゅ') => "çɨ",
        ('ひ', 'ょ') => "ço",
        ('び', 'ゃ') => "bʲa",
        ('び', 'ゅ') | ('ゔ', 'ゅ') => "bʲɨ",
        ('び', 'ょ') | ('ゔ', 'ょ') => "bʲo",
        ('ぴ', 'ゃ') => "pʲa",
        ('ぴ', 'ゅ') => "pʲɨ",
        ('ぴ', 'ょ') => "pʲo",
        ('ふ', 'ぁ') => "ɸa",
        ('ふ', 'ぃ') => "ɸʲi",
        ('ふ', 'ぇ') => "ɸe",
        ('ふ', 'ぉ') => "ɸo",
        ('ふ', 'ゅ') => "ɸʲɨ",
        ('ふ', 'ょ') => "ɸʲo",
        ('み', 'ゃ') => "mʲa",
        ('み', 'ゅ') => "mʲɨ",
        ('み', 'ょ') => "mʲo",
        ('り', 'ゃ') => "ɾʲa",
        ('り', 'ゅ') => "ɾʲɨ",
        ('り', 'ょ') => "ɾʲo",
        ('ゔ', 'ぁ') => "va",
        ('ゔ', 'ぃ') => "vʲi",
        ('ゔ', 'ぇ') => "ve",
        ('ゔ', 'ぉ') => "vo",
        _ => return None,
    })
}

/// Punctuation that only marks the text (brackets, dashes, connectors, the quotes and waves
/// that are not in Kokoro's vocabulary): the model says nothing for it.
fn is_unvoiced_punctuation(c: char) -> bool {
    matches!(c, '\'' | '`' | '~')
        || matches!(
            get_general_category(c),
            GeneralCategory::OpenPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::ConnectorPunctuation
        )
}

/// Letters, digits and symbols: what a reader would say something for. Kana are not among
/// them: a kana that reads as nothing (a small kana on its own, a sound mark) is silent by
/// cutlet's rules, not unknown.
fn says_something(c: char) -> bool {
    use GeneralCategory as G;
    !('\u{3040}'..='\u{30FF}').contains(&c)
        && matches!(
            get_general_category(c),
            G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
                | G::DecimalNumber
                | G::LetterNumber
                | G::OtherNumber
                | G::MathSymbol
                | G::CurrencySymbol
                | G::ModifierSymbol
                | G::OtherSymbol
        )
}

/// A word the reference would drop, or pass through as characters Kokoro has no token for, is
/// an error naming it.
fn check_speakable(word: &Word, roma: &str) -> Result<(), TtsError> {
    let refuse = |reason: String| TtsError::Phonemize {
        word: word.surface.clone(),
        reason,
    };
    if roma.trim().is_empty() {
        if let Some(c) = word.surface.chars().find(|&c| says_something(c)) {
            return Err(refuse(format!(
                "no Japanese reading for {c:?} (U+{:04X}): the dictionary does not know it",
                u32::from(c)
            )));
        }
        return Ok(());
    }
    match roma.chars().find(|&c| {
        !c.is_whitespace()
            && !PHONEMES.contains(c)
            && !PUNCTUATION.contains(c)
            && !is_unvoiced_punctuation(c)
            && c != 'っ'
    }) {
        Some(c) => Err(refuse(format!(
            "Kokoro has no phoneme for {c:?} (U+{:04X})",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

/// cutlet's last step: no space before `ʔ` unless punctuation precedes, none after it unless
/// a quote follows.
fn join_sokuon(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i + 1).copied();
            let before_stop =
                after == Some('ʔ') && !before.is_some_and(|b| "!\",.:;?»—…”".contains(b));
            let after_stop = before == Some('ʔ') && !after.is_some_and(|a| "\"«“".contains(a));
            if before_stop || after_stop {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(surface: &str, hira: &str, char_type: u32) -> Word {
        Word {
            surface: surface.into(),
            hira: hira.into(),
            char_type,
            spaced: false,
            latin: false,
        }
    }

    #[test]
    fn normalisation_reads_numbers_and_ranges_in_kana() {
        assert_eq!(normalize("１０〜２０人"), " じゅうから にじゅう人");
        assert_eq!(normalize("3.14"), " さん. じゅうよん");
        assert_eq!(normalize("ㇰ’”"), "ク'\"");
        assert_eq!(
            normalize("09012345678"),
            " ゼロ きゅう ゼロ いち に さん よん ご ろく なな はち"
        );
    }

    #[test]
    fn kana_read_as_cutlet_reads_them() {
        let read = |hira: &str| romaji_word(&word("x語", hira, KANA)).expect("romaji");
        assert_eq!(read("とーきょー"), "toːkʲoː");
        assert_eq!(read("がっこー"), "ɡaʔkoː");
        assert_eq!(read("しんぶん"), "ɕimbɯɴ");
        assert_eq!(read("こんにちは"), "koɲɲiʨiha");
        assert_eq!(read("てぃっしゅ"), "tʲiʔɕɨ");
        assert_eq!(read("ゔぁいおりん"), "vaioɾʲiɴ");
        assert_eq!(read("たゞ"), "tada");
        assert_eq!(read("わーぉ"), "βaːo");
    }

    #[test]
    fn spaces_around_sokuon_follow_cutlet() {
        assert_eq!(join_sokuon("ʨo ʔ to"), "ʨoʔto");
        assert_eq!(join_sokuon("a. ʔ “b"), "a. ʔ “b");
    }

    #[test]
    fn words_without_a_reading_are_named() {
        let unknown_kanji = word("𠮷", "𠮷", 2);
        match check_speakable(&unknown_kanji, "") {
            Err(TtsError::Phonemize { word, reason }) => {
                assert_eq!(word, "𠮷");
                assert!(reason.contains("no Japanese reading"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let percent = word("%", "%", KANA);
        assert!(check_speakable(&percent, "%").is_err());
        // Brackets say nothing and are no error.
        assert!(check_speakable(&word("【", "【", KANA), "[").is_ok());
        assert!(check_speakable(&word("〃", "〃", KANA), "").is_ok());
    }
}
