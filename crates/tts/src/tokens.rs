//! Phonemes → Kokoro token ids, and packing into chunks the model accepts (≤ 510 tokens).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::error::TtsError;

/// Kokoro's context is 512 positions; two are the padding zeros added at both ends.
pub const MAX_CHUNK_TOKENS: usize = 510;

pub struct Vocab {
    ids: HashMap<char, i64>,
}

#[derive(Deserialize)]
struct VocabFile {
    vocab: HashMap<String, i64>,
}

impl Vocab {
    pub fn load(path: &Path) -> Result<Self, TtsError> {
        let raw = std::fs::read_to_string(path).map_err(|e| {
            TtsError::Config(format!("cannot read vocabulary {}: {e}", path.display()))
        })?;
        let file: VocabFile = serde_json::from_str(&raw).map_err(|e| {
            TtsError::Config(format!("vocabulary {} is not valid: {e}", path.display()))
        })?;
        let ids = file
            .vocab
            .into_iter()
            .filter_map(|(k, v)| {
                let mut chars = k.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, v)),
                    _ => None,
                }
            })
            .collect();
        Ok(Self { ids })
    }

    /// Token ids of a phoneme string. Characters outside the vocabulary (stray symbols) are
    /// skipped, as in the reference implementation; they carry no sound.
    pub fn encode(&self, phonemes: &str) -> Vec<i64> {
        phonemes
            .chars()
            .filter_map(|c| self.ids.get(&c).copied())
            .collect()
    }

    /// Whether `c` is one of the model's phonemes (or marks).
    pub fn contains(&self, c: char) -> bool {
        self.ids.contains_key(&c)
    }

    pub fn token_count(&self, phonemes: &str) -> usize {
        phonemes
            .chars()
            .filter(|c| self.ids.contains_key(c))
            .count()
    }
}

/// How a piece of speech ends, which decides the pause after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    Sentence,
    Clause,
    Word,
}

/// A run of phonemes that fits the model, with the boundary it ends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub phonemes: String,
    pub boundary: Boundary,
}

/// Splits a sentence's phonemes so no piece exceeds `max_tokens`: at clause punctuation first,
/// then between words, and only as a last resort inside an (absurdly long) word.
pub fn split_sentence(vocab: &Vocab, phonemes: &str, max_tokens: usize) -> Vec<Piece> {
    if vocab.token_count(phonemes) <= max_tokens {
        return vec![Piece {
            phonemes: phonemes.to_string(),
            boundary: Boundary::Sentence,
        }];
    }
    let mut pieces = Vec::new();
    let clauses = split_keep(phonemes, |c| matches!(c, ',' | ';' | ':' | '—' | '…'));
    let n = clauses.len();
    for (i, clause) in clauses.into_iter().enumerate() {
        let last_boundary = if i + 1 == n {
            Boundary::Sentence
        } else {
            Boundary::Clause
        };
        if vocab.token_count(&clause) <= max_tokens {
            pieces.push(Piece {
                phonemes: clause,
                boundary: last_boundary,
            });
            continue;
        }
        let words: Vec<&str> = clause.split(' ').collect();
        let mut cur = String::new();
        for word in words {
            let candidate = if cur.is_empty() {
                word.to_string()
            } else {
                format!("{cur} {word}")
            };
            if vocab.token_count(&candidate) <= max_tokens {
                cur = candidate;
                continue;
            }
            if !cur.is_empty() {
                pieces.push(Piece {
                    phonemes: std::mem::take(&mut cur),
                    boundary: Boundary::Word,
                });
            }
            let mut w = word.to_string();
            while vocab.token_count(&w) > max_tokens {
                let cut: String = w.chars().take(max_tokens).collect();
                w = w.chars().skip(max_tokens).collect();
                pieces.push(Piece {
                    phonemes: cut,
                    boundary: Boundary::Word,
                });
            }
            cur = w;
        }
        if !cur.is_empty() {
            pieces.push(Piece {
                phonemes: cur,
                boundary: last_boundary,
            });
        }
    }
    pieces
}

/// Splits after every character matching `is_sep` that is followed by a space; the separator
/// stays with the left part (Kokoro uses punctuation for prosody).
fn split_keep(s: &str, is_sep: impl Fn(char) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        cur.push(c);
        if is_sep(c) && chars.peek() == Some(&' ') {
            chars.next();
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Packs pieces into chunks. The first chunk is kept short (one piece, or pieces up to
/// `first_chunk_tokens`) so audio starts early; later chunks are filled up to `max_tokens`.
pub fn pack(
    vocab: &Vocab,
    pieces: Vec<Piece>,
    first_chunk_tokens: usize,
    max_tokens: usize,
) -> Vec<Piece> {
    let mut chunks: Vec<Piece> = Vec::new();
    for piece in pieces {
        let limit = if chunks.len() == 1 {
            first_chunk_tokens
        } else {
            max_tokens
        };
        if let Some(last) = chunks.last_mut() {
            let merged = format!("{} {}", last.phonemes, piece.phonemes);
            if vocab.token_count(&merged) <= limit {
                last.phonemes = merged;
                last.boundary = piece.boundary;
                continue;
            }
        }
        chunks.push(piece);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        let ids = "abcdefghijklmnopqrstuvwxyz ,.;:—"
            .chars()
            .zip(1..)
            .collect();
        Vocab { ids }
    }

    #[test]
    fn long_sentence_splits_at_clauses_then_words() {
        let v = vocab();
        let s = format!("{}, {}.", "ab ".repeat(10).trim(), "cd ".repeat(30).trim());
        let pieces = split_sentence(&v, &s, 40);
        assert!(
            pieces.iter().all(|p| v.token_count(&p.phonemes) <= 40),
            "{pieces:?}"
        );
        assert_eq!(pieces[0].boundary, Boundary::Clause);
        assert_eq!(pieces.last().map(|p| p.boundary), Some(Boundary::Sentence));
        let rejoined: String = pieces.iter().map(|p| p.phonemes.replace(' ', "")).collect();
        assert_eq!(rejoined, s.replace(' ', ""));
    }

    #[test]
    fn giant_word_is_cut_not_dropped() {
        let v = vocab();
        let w = "a".repeat(100);
        let pieces = split_sentence(&v, &w, 30);
        assert_eq!(pieces.iter().map(|p| p.phonemes.len()).sum::<usize>(), 100);
        assert!(pieces.iter().all(|p| p.phonemes.len() <= 30));
    }

    #[test]
    fn first_chunk_short_then_full() {
        let v = vocab();
        let piece = |s: &str| Piece {
            phonemes: s.to_string(),
            boundary: Boundary::Sentence,
        };
        let pieces = vec![
            piece("aaaa."),
            piece("bbbb."),
            piece("cccc."),
            piece("dddd."),
        ];
        let chunks = pack(&v, pieces, 5, 12);
        assert_eq!(chunks[0].phonemes, "aaaa.");
        assert_eq!(chunks[1].phonemes, "bbbb. cccc.");
        assert_eq!(chunks[2].phonemes, "dddd.");
    }
}
