//! Text normalisation and sentence splitting, before phonemization.
//!
//! misaki already speaks digits, currency and ordinals; this pass handles what it does not:
//! abbreviations (which would also end sentences early), typographic punctuation Kokoro's vocab
//! lacks, symbols such as `%` and `&`, stray control characters and runs of whitespace.

use avb_workflows::speech::voices::G2p;

/// Abbreviations expanded before splitting, so "Dr. Smith" is neither two sentences nor "doctor
/// period". Matched case-sensitively on a word boundary.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("Mr.", "Mister"),
    ("Mrs.", "Missus"),
    ("Ms.", "Miz"),
    ("Dr.", "Doctor"),
    ("Prof.", "Professor"),
    ("Sr.", "Senior"),
    ("Jr.", "Junior"),
    ("St.", "Saint"),
    ("Mt.", "Mount"),
    ("vs.", "versus"),
    ("etc.", "et cetera"),
    ("e.g.", "for example"),
    ("i.e.", "that is"),
    ("approx.", "approximately"),
    ("Inc.", "Incorporated"),
    ("Ltd.", "Limited"),
    ("Co.", "Company"),
    ("Jan.", "January"),
    ("Feb.", "February"),
    ("Aug.", "August"),
    ("Sept.", "September"),
    ("Oct.", "October"),
    ("Nov.", "November"),
    ("Dec.", "December"),
    ("No.", "number"),
];

/// Normalises text for the phonemizer of `g2p`'s language: quotes, dashes and spaces for every
/// language; English abbreviations and symbols spelled out only for English (espeak-ng reads
/// numbers and symbols in its own language). Never drops letters or digits.
pub fn normalize_for(text: &str, g2p: G2p) -> String {
    match g2p {
        G2p::English { .. } => normalize(text),
        _ => collapse_spaces(&normalize_characters(text)),
    }
}

fn normalize_characters(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '`' => '\'',
            '\u{2013}' | '\u{2012}' | '\u{2015}' => '—',
            '\t' | '\r' | '\u{00A0}' | '\u{2009}' | '\u{202F}' => ' ',
            c if c.is_control() && c != '\n' => ' ',
            c => c,
        })
        .collect();
    s.replace("...", "…")
        .replace(" - ", " — ")
        .replace("--", "—")
}

/// Normalises English text for the phonemizer. Never drops letters or digits.
pub fn normalize(text: &str) -> String {
    let mut s = normalize_characters(text);
    for (abbr, full) in ABBREVIATIONS {
        s = replace_word(&s, abbr, full);
    }
    s = replace_symbols(&s);
    collapse_spaces(&s)
}

/// `%` → "percent", `&` → "and", `@` → "at", `+` between words → "plus", `=` → "equals".
fn replace_symbols(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        let word = match c {
            '%' => Some(" percent"),
            '&' => Some(" and "),
            '@' => Some(" at "),
            '=' => Some(" equals "),
            '+' => Some(" plus "),
            '#' => Some(" number "),
            _ => None,
        };
        match word {
            Some(w) => out.push_str(w),
            None => out.push(c),
        }
    }
    out
}

fn replace_word(s: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(from) {
        let before_ok = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        out.push_str(&rest[..pos]);
        if before_ok {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        rest = &rest[pos + from.len()..];
    }
    out.push_str(rest);
    out
}

fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = true;
    for c in s.chars() {
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = c == '\n';
        }
    }
    out.trim().to_string()
}

/// Splits normalised text into sentences: after `.`, `!`, `?`, `…` (plus closing quotes or
/// brackets) followed by whitespace, after the full-width `。`, `！`, `？` and the Devanagari
/// danda `।`/`॥` whatever follows (Chinese and Japanese put no space after a sentence), and at
/// line breaks. Every character ends up in exactly one sentence; empty sentences are skipped.
pub fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            push_trimmed(&mut out, &mut cur);
            i += 1;
            continue;
        }
        cur.push(c);
        let spaceless = matches!(c, '。' | '！' | '？' | '।' | '॥');
        if spaceless || matches!(c, '.' | '!' | '?' | '…') {
            let mut j = i + 1;
            while j < chars.len() && is_sentence_closer(chars[j]) {
                cur.push(chars[j]);
                j += 1;
            }
            if spaceless || j >= chars.len() || chars[j].is_whitespace() {
                push_trimmed(&mut out, &mut cur);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    push_trimmed(&mut out, &mut cur);
    out
}

/// What may follow a sentence's terminator and still belong to the sentence: closing quotes
/// and brackets (ASCII and full-width) and more terminators.
fn is_sentence_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | ')'
            | ']'
            | '”'
            | '’'
            | '」'
            | '』'
            | '）'
            | '】'
            | '》'
            | '.'
            | '!'
            | '?'
            | '。'
            | '！'
            | '？'
            | '…'
    )
}

fn push_trimmed(out: &mut Vec<String>, cur: &mut String) {
    let t = cur.trim();
    if t.chars().any(char::is_alphanumeric) {
        out.push(t.to_string());
    }
    cur.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_expand_and_do_not_split() {
        let n = normalize("Dr. Smith met Mr. Jones, e.g. at 5 p.m.");
        assert!(
            n.starts_with("Doctor Smith met Mister Jones, for example"),
            "{n}"
        );
        assert_eq!(split_sentences(&n).len(), 1);
    }

    #[test]
    fn symbols_and_punctuation() {
        assert_eq!(normalize("50% of R&D"), "50 percent of R and D");
        assert_eq!(
            normalize("wait...  what\u{2019}s\tthis"),
            "wait… what's this"
        );
        assert_eq!(normalize("a \u{2013} b"), "a — b");
    }

    #[test]
    fn sentences_split_on_terminators_and_newlines() {
        let s = split_sentences("Hello there! How are you? I'm fine.\nNew line \"quoted.\" End");
        assert_eq!(
            s,
            vec![
                "Hello there!",
                "How are you?",
                "I'm fine.",
                "New line \"quoted.\"",
                "End"
            ]
        );
    }

    #[test]
    fn sentences_without_spaces_split_on_full_width_terminators_and_the_danda() {
        assert_eq!(
            split_sentences("你好！今天怎么样？「很好。」他说。"),
            vec!["你好！", "今天怎么样？", "「很好。」", "他说。"]
        );
        assert_eq!(split_sentences("नमस्ते। आप कैसे हैं?"), vec!["नमस्ते।", "आप कैसे हैं?"]);
    }

    #[test]
    fn decimal_points_do_not_split() {
        assert_eq!(split_sentences("Pi is 3.14 roughly. Yes.").len(), 2);
    }
}
