//! MeCab 0.996's morphological analysis over its compiled dictionary files (`sys.dic`,
//! `unk.dic`, `char.bin`, `matrix.bin`, as `mecab-dict-index` writes them): the double-array
//! lookup of known words, unknown words by character class (`char.def`'s invoke, group and
//! length), and the lowest-cost path through the lattice, with MeCab's order among equal costs.
//! With unidic-lite it gives the tokens fugashi gives: surface, pronunciation, kana reading,
//! character type and whether the word is unknown.
//!
//! The files are read, not mapped into memory: mapping a file is `unsafe` in Rust, which this
//! workspace forbids. What every sentence needs (the double array and the token table, 30 MB for
//! unidic-lite) is read when the dictionary is opened; a word's features (158 MB in all) are read
//! from the file for the words of the best path only, and a row of connection costs (12 KB) when
//! a word with that left context first appears, then kept.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::TtsError;

/// The dictionary files this reads, in a MeCab dictionary directory.
pub const FILES: [&str; 4] = ["sys.dic", "unk.dic", "char.bin", "matrix.bin"];

/// `magic ^ DICTIONARY_MAGIC` is the file's length in a MeCab dictionary header.
const DICTIONARY_MAGIC: u32 = 0xef71_8f77;
const DICTIONARY_VERSION: u32 = 102;
const HEADER_BYTES: u64 = 72;
/// Longest run of one character class MeCab groups into a single unknown word.
const MAX_GROUPING_SIZE: usize = 24;
/// MeCab looks at most this many bytes ahead of a position.
const MAX_LOOKAHEAD: usize = 65535;
/// Characters `char.bin` has a class for: the UCS-2 range below U+FFFF.
const CHAR_TABLE_LEN: usize = 0xFFFF;

/// One word of the best path, as fugashi reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Morpheme<'a> {
    pub surface: &'a str,
    /// UniDic's pronunciation (feature 9: 東京 → トーキョー); empty when the dictionary has none.
    pub pron: String,
    /// UniDic's kana reading (feature 17: 東京 → トウキョウ); empty when it has none.
    pub kana: String,
    /// `char.def`'s class of the word's first character (0 DEFAULT, 2 KANJI, 3 SYMBOL, …).
    pub char_type: u32,
    pub unknown: bool,
    /// Whitespace came before the word.
    pub spaced: bool,
}

/// The four files of one dictionary directory, ready to tokenize.
pub struct Tagger {
    system: Dictionary,
    unknown: Dictionary,
    chars: CharProperty,
    matrix: Matrix,
    /// For each character class, its unknown-word entries in `unk.dic` (first token, count).
    unknown_entries: Vec<(usize, usize)>,
    space: CharInfo,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> TtsError {
    TtsError::Config(format!(
        "the Japanese dictionary file {} is unusable ({what}): run `python3 deploy/fetch_assets.py`",
        path.display()
    ))
}

fn open(path: &Path) -> Result<File, TtsError> {
    File::open(path).map_err(|e| {
        TtsError::Config(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "the Japanese dictionary file {} is missing: run `python3 deploy/fetch_assets.py`",
                path.display()
            )
        } else {
            format!(
                "cannot read the Japanese dictionary file {}: {e}",
                path.display()
            )
        })
    })
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    match b.get(o..o + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    match b.get(o..o + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Bytes of a file read at an offset, from any thread.
struct Positioned {
    path: PathBuf,
    file: Mutex<File>,
}

impl Positioned {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, TtsError> {
        let failed = |e: std::io::Error| corrupt(&self.path, e);
        let mut file = self
            .file
            .lock()
            .map_err(|_| corrupt(&self.path, "a reader panicked"))?;
        file.seek(SeekFrom::Start(offset)).map_err(failed)?;
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]).map_err(failed)? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }
}

#[derive(Clone, Copy)]
struct Unit {
    base: i32,
    check: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    left: u16,
    right: u16,
    cost: i16,
    feature: u32,
}

/// A compiled dictionary (`sys.dic` or `unk.dic`): a double array from surface to entries, the
/// entries, and their features (read when asked for).
struct Dictionary {
    units: Vec<Unit>,
    entries: Vec<Entry>,
    features: Positioned,
    features_start: u64,
    features_len: u64,
}

impl Dictionary {
    fn open(path: &Path) -> Result<Self, TtsError> {
        let file = open(path)?;
        let len = file.metadata().map_err(|e| corrupt(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER_BYTES as usize];
        reader
            .read_exact(&mut header)
            .map_err(|_| corrupt(path, "shorter than its header"))?;
        let field = |i: usize| u32_at(&header, 4 * i);
        if u64::from(field(0) ^ DICTIONARY_MAGIC) != len {
            return Err(corrupt(path, "not a MeCab dictionary of this length"));
        }
        if field(1) != DICTIONARY_VERSION {
            return Err(corrupt(
                path,
                format!(
                    "dictionary version {}, expected {DICTIONARY_VERSION}",
                    field(1)
                ),
            ));
        }
        let charset = &header[40..];
        let charset = &charset[..charset.iter().position(|&c| c == 0).unwrap_or(0)];
        if !charset.eq_ignore_ascii_case(b"utf8") && !charset.eq_ignore_ascii_case(b"utf-8") {
            return Err(corrupt(
                path,
                format!(
                    "character set {}, expected UTF-8",
                    String::from_utf8_lossy(charset)
                ),
            ));
        }
        let (units_len, entries_len, features_len) = (field(6), field(7), field(8));
        if HEADER_BYTES + u64::from(units_len) + u64::from(entries_len) + u64::from(features_len)
            != len
        {
            return Err(corrupt(path, "its sections do not add up to its length"));
        }
        let units = read_records(&mut reader, units_len as usize / 8, |b: [u8; 8]| Unit {
            base: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            check: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
        .map_err(|e| corrupt(path, e))?;
        let entries = read_records(&mut reader, entries_len as usize / 16, |b: [u8; 16]| {
            Entry {
                left: u16::from_le_bytes([b[0], b[1]]),
                right: u16::from_le_bytes([b[2], b[3]]),
                cost: i16::from_le_bytes([b[6], b[7]]),
                feature: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            }
        })
        .map_err(|e| corrupt(path, e))?;
        Ok(Self {
            units,
            entries,
            features: Positioned {
                path: path.to_path_buf(),
                file: Mutex::new(reader.into_inner()),
            },
            features_start: HEADER_BYTES + u64::from(units_len) + u64::from(entries_len),
            features_len: u64::from(features_len),
        })
    }

    fn unit(&self, at: i64) -> Option<Unit> {
        usize::try_from(at)
            .ok()
            .and_then(|i| self.units.get(i).copied())
    }

    /// The value stored for the key ending at `base`, if a key ends there.
    fn value_at(&self, base: i32) -> Option<u32> {
        let u = self.unit(i64::from(base))?;
        (base as u32 == u.check && u.base < 0).then(|| (-i64::from(u.base) - 1) as u32)
    }

    /// Darts' commonPrefixSearch: every key that is a prefix of `key`, as (value, byte length).
    fn common_prefixes(&self, key: &[u8], out: &mut Vec<(u32, usize)>) {
        out.clear();
        let Some(mut base) = self.unit(0).map(|u| u.base) else {
            return;
        };
        for (i, &k) in key.iter().enumerate() {
            if let Some(v) = self.value_at(base) {
                out.push((v, i));
            }
            match self.unit(i64::from(base) + i64::from(k) + 1) {
                Some(u) if base as u32 == u.check => base = u.base,
                _ => return,
            }
        }
        if let Some(v) = self.value_at(base) {
            out.push((v, key.len()));
        }
    }

    /// Darts' exactMatchSearch.
    fn exact(&self, key: &[u8]) -> Option<u32> {
        let mut base = self.unit(0)?.base;
        for &k in key {
            match self.unit(i64::from(base) + i64::from(k) + 1) {
                Some(u) if base as u32 == u.check => base = u.base,
                _ => return None,
            }
        }
        self.value_at(base)
    }

    /// The entries a search value points at: the first's index and how many.
    fn entries_of(&self, value: u32) -> std::ops::Range<usize> {
        let first = (value >> 8) as usize;
        let count = (value & 0xff) as usize;
        first.min(self.entries.len())..(first + count).min(self.entries.len())
    }

    /// An entry's feature string (comma-separated, NUL-terminated in the file).
    fn feature(&self, offset: u32) -> Result<String, TtsError> {
        let mut bytes = Vec::new();
        let mut at = u64::from(offset);
        let mut chunk = [0u8; 1024];
        while at < self.features_len {
            let want = chunk
                .len()
                .min(usize::try_from(self.features_len - at).unwrap_or(chunk.len()));
            let got = self
                .features
                .read(self.features_start + at, &mut chunk[..want])?;
            if got == 0 {
                break;
            }
            if let Some(end) = chunk[..got].iter().position(|&c| c == 0) {
                bytes.extend_from_slice(&chunk[..end]);
                return String::from_utf8(bytes)
                    .map_err(|_| corrupt(&self.features.path, "a feature is not UTF-8"));
            }
            bytes.extend_from_slice(&chunk[..got]);
            at += got as u64;
        }
        Err(corrupt(&self.features.path, "a feature runs past the end"))
    }
}

/// `count` fixed-size records from `reader`.
fn read_records<const N: usize, T>(
    reader: &mut impl Read,
    count: usize,
    parse: impl Fn([u8; N]) -> T,
) -> std::io::Result<Vec<T>> {
    let mut out = Vec::with_capacity(count);
    let mut record = [0u8; N];
    for _ in 0..count {
        reader.read_exact(&mut record)?;
        out.push(parse(record));
    }
    Ok(out)
}

/// A character's class, packed as MeCab packs it: the classes it belongs to (a bit each), its
/// default class, how many characters an unknown word of it may span, whether a run of it is
/// grouped into one word, and whether unknown words are tried even where the dictionary has one.
#[derive(Clone, Copy, Default)]
struct CharInfo(u32);

impl CharInfo {
    fn classes(self) -> u32 {
        self.0 & 0x3ffff
    }
    fn default_type(self) -> u32 {
        (self.0 >> 18) & 0xff
    }
    fn length(self) -> u32 {
        (self.0 >> 26) & 0xf
    }
    fn group(self) -> bool {
        (self.0 >> 30) & 1 == 1
    }
    fn invoke(self) -> bool {
        (self.0 >> 31) & 1 == 1
    }
    fn is_kind_of(self, other: CharInfo) -> bool {
        self.classes() & other.classes() != 0
    }
}

/// `char.bin`: the class names, and each UCS-2 character's class.
struct CharProperty {
    names: Vec<Vec<u8>>,
    table: Vec<u32>,
}

impl CharProperty {
    fn open(path: &Path) -> Result<Self, TtsError> {
        let mut bytes = Vec::new();
        open(path)?
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(path, e))?;
        let count = u32_at(&bytes, 0) as usize;
        let table_start = 4 + 32 * count;
        if bytes.len() < table_start + 4 * CHAR_TABLE_LEN {
            return Err(corrupt(path, "shorter than its character table"));
        }
        let names = (0..count)
            .map(|i| {
                let name = &bytes[4 + 32 * i..4 + 32 * (i + 1)];
                name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())].to_vec()
            })
            .collect();
        let table = (0..CHAR_TABLE_LEN)
            .map(|c| u32_at(&bytes, table_start + 4 * c))
            .collect();
        Ok(Self { names, table })
    }

    fn info_of(&self, ucs2: u16) -> CharInfo {
        // MeCab's table stops before U+FFFF; past it, its map reads zeros.
        CharInfo(self.table.get(usize::from(ucs2)).copied().unwrap_or(0))
    }

    /// MeCab's utf8_to_ucs2 on the character at the start of `s`: its class and byte length.
    /// Characters outside UCS-2 take the class of U+0000, as in MeCab.
    fn char_at(&self, s: &[u8]) -> (CharInfo, usize) {
        let byte = |i: usize| u16::from(s.get(i).copied().unwrap_or(0));
        let b0 = byte(0);
        let (code, len) = if b0 < 0x80 {
            (b0, 1)
        } else if s.len() >= 2 && b0 & 0xe0 == 0xc0 {
            (((b0 & 0x1f) << 6) | (byte(1) & 0x3f), 2)
        } else if s.len() >= 3 && b0 & 0xf0 == 0xe0 {
            (
                ((b0 & 0x0f) << 12) | ((byte(1) & 0x3f) << 6) | (byte(2) & 0x3f),
                3,
            )
        } else if s.len() >= 4 && b0 & 0xf8 == 0xf0 {
            (0, 4)
        } else {
            (0, 1)
        };
        (self.info_of(code), len)
    }

    /// MeCab's seekToOtherType: from `at`, skips characters of `class`'s kinds. Returns where
    /// it stopped, the class and byte length of the last character looked at, and how many
    /// characters it skipped.
    fn skip_kind(
        &self,
        s: &[u8],
        mut at: usize,
        end: usize,
        mut class: CharInfo,
    ) -> (usize, CharInfo, usize, usize) {
        let (mut last, mut last_len, mut skipped) = (CharInfo::default(), 0, 0);
        while at < end {
            let (info, len) = self.char_at(&s[at..end]);
            last = info;
            last_len = len;
            if !class.is_kind_of(info) {
                break;
            }
            at += len;
            skipped += 1;
            class = info;
        }
        (at, last, last_len, skipped)
    }
}

/// `matrix.bin`: the cost of each (right context of the word before, left context of the word
/// after) pair, a row per left context read when first needed.
struct Matrix {
    file: Positioned,
    left_size: usize,
    rows: Vec<OnceLock<Box<[i16]>>>,
}

impl Matrix {
    fn open(path: &Path) -> Result<Self, TtsError> {
        let mut file = open(path)?;
        let len = file.metadata().map_err(|e| corrupt(path, e))?.len();
        let mut header = [0u8; 4];
        file.read_exact(&mut header)
            .map_err(|_| corrupt(path, "shorter than its header"))?;
        let left_size = usize::from(u16_at(&header, 0));
        let right_size = usize::from(u16_at(&header, 2));
        if 4 + 2 * (left_size as u64) * (right_size as u64) != len {
            return Err(corrupt(path, "its size does not match its header"));
        }
        Ok(Self {
            file: Positioned {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            left_size,
            rows: (0..right_size).map(|_| OnceLock::new()).collect(),
        })
    }

    /// Costs from every right context to the left context `left`.
    fn row(&self, left: u16) -> Result<&[i16], TtsError> {
        let cell = self
            .rows
            .get(usize::from(left))
            .ok_or_else(|| corrupt(&self.file.path, "a word's context is out of range"))?;
        if let Some(row) = cell.get() {
            return Ok(row);
        }
        let mut bytes = vec![0u8; 2 * self.left_size];
        let offset = 4 + 2 * (self.left_size as u64) * u64::from(left);
        if self.file.read(offset, &mut bytes)? != bytes.len() {
            return Err(corrupt(&self.file.path, "shorter than its header says"));
        }
        let row: Box<[i16]> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        // Another thread may have read the same row meanwhile; either copy is the same.
        let _ = cell.set(row);
        Ok(cell.get().map_or(&[], |r| r))
    }

    fn cost(row: &[i16], right: u16) -> i64 {
        i64::from(row.get(usize::from(right)).copied().unwrap_or(0))
    }
}

struct Node {
    /// Where the word's surface starts and ends (bytes), after any whitespace skipped before it.
    start: usize,
    end: usize,
    spaced: bool,
    left: u16,
    right: u16,
    word_cost: i16,
    unknown: bool,
    feature: u32,
    char_type: u32,
    cost: i64,
    prev: usize,
}

impl Tagger {
    /// Opens the dictionary in `dir`; an error names the file that is missing or unusable.
    pub fn open(dir: &Path) -> Result<Self, TtsError> {
        let system = Dictionary::open(&dir.join("sys.dic"))?;
        let unknown = Dictionary::open(&dir.join("unk.dic"))?;
        let chars = CharProperty::open(&dir.join("char.bin"))?;
        let matrix = Matrix::open(&dir.join("matrix.bin"))?;
        let unknown_entries = chars
            .names
            .iter()
            .map(|name| {
                let value = unknown.exact(name).ok_or_else(|| {
                    corrupt(
                        &dir.join("unk.dic"),
                        format!(
                            "no entry for the character class {}",
                            String::from_utf8_lossy(name)
                        ),
                    )
                })?;
                let range = unknown.entries_of(value);
                Ok((range.start, range.len()))
            })
            .collect::<Result<Vec<_>, TtsError>>()?;
        for (dictionary, name) in [(&system, "sys.dic"), (&unknown, "unk.dic")] {
            let rows = matrix.rows.len();
            if dictionary
                .entries
                .iter()
                .any(|e| usize::from(e.left) >= rows || usize::from(e.right) >= matrix.left_size)
            {
                return Err(corrupt(
                    &dir.join(name),
                    "its contexts do not fit matrix.bin",
                ));
            }
        }
        let space = chars.info_of(u16::from(b' '));
        Ok(Self {
            system,
            unknown,
            chars,
            matrix,
            unknown_entries,
            space,
        })
    }

    /// MeCab's Tokenizer::lookup: every word that can start at `begin` (after skipping spaces),
    /// known words first, then unknown words by the first character's class. Pushes them to
    /// `nodes` and their indices to `out`, in MeCab's order.
    fn lookup(
        &self,
        s: &[u8],
        begin: usize,
        nodes: &mut Vec<Node>,
        out: &mut Vec<usize>,
        prefixes: &mut Vec<(u32, usize)>,
    ) {
        out.clear();
        let end = s.len().min(begin + MAX_LOOKAHEAD);
        let (start, class, first_len, _) = self.chars.skip_kind(s, begin, end, self.space);
        let spaced = start > begin;
        self.system.common_prefixes(&s[start..end], prefixes);
        for &(value, len) in prefixes.iter() {
            for e in &self.system.entries[self.system.entries_of(value)] {
                nodes.push(Node {
                    start,
                    end: start + len,
                    spaced,
                    left: e.left,
                    right: e.right,
                    word_cost: e.cost,
                    unknown: false,
                    feature: e.feature,
                    char_type: class.default_type(),
                    cost: 0,
                    prev: 0,
                });
                out.push(nodes.len() - 1);
            }
        }
        if !out.is_empty() && !class.invoke() {
            return;
        }
        let (first_entry, count) = self
            .unknown_entries
            .get(class.default_type() as usize)
            .copied()
            .unwrap_or((0, 0));
        let add_unknown = |word_end: usize, nodes: &mut Vec<Node>, out: &mut Vec<usize>| {
            for e in self.unknown.entries.iter().skip(first_entry).take(count) {
                nodes.push(Node {
                    start,
                    end: word_end,
                    spaced,
                    left: e.left,
                    right: e.right,
                    word_cost: e.cost,
                    unknown: true,
                    feature: e.feature,
                    char_type: class.default_type(),
                    cost: 0,
                    prev: 0,
                });
                out.push(nodes.len() - 1);
            }
        };
        let mut word_end = start + first_len;
        if word_end > end {
            // Only whitespace was left: MeCab still adds a word, which ends past the text.
            add_unknown(word_end, nodes, out);
            if !out.is_empty() {
                return;
            }
        }
        let mut group_end = None;
        if class.group() {
            let (stop, _, _, skipped) = self.chars.skip_kind(s, word_end, end, class);
            if skipped <= MAX_GROUPING_SIZE {
                add_unknown(stop, nodes, out);
            }
            group_end = Some(stop);
        }
        for _ in 1..=class.length() {
            if word_end > end {
                break;
            }
            if Some(word_end) == group_end {
                continue;
            }
            add_unknown(word_end, nodes, out);
            if word_end >= end {
                // MeCab would read the terminating NUL here, then stop at the end anyway.
                break;
            }
            let (info, len) = self.chars.char_at(&s[word_end..end]);
            if !class.is_kind_of(info) {
                break;
            }
            word_end += len;
        }
        if out.is_empty() {
            add_unknown(word_end, nodes, out);
        }
    }

    /// The words of `text` on the lowest-cost path, with their readings.
    pub fn parse<'a>(&self, text: &'a str) -> Result<Vec<Morpheme<'a>>, TtsError> {
        let s = text.as_bytes();
        let len = s.len();
        let mut nodes = vec![Node {
            start: 0,
            end: 0,
            spaced: false,
            left: 0,
            right: 0,
            word_cost: 0,
            unknown: false,
            feature: 0,
            char_type: 0,
            cost: 0,
            prev: usize::MAX,
        }];
        // Words ending at each position, oldest first (MeCab walks them newest first). A word
        // made of trailing whitespace may end up to one character past the text.
        let mut ending: Vec<Vec<usize>> = vec![Vec::new(); len + 8];
        ending[0].push(0);
        let (mut starting, mut prefixes) = (Vec::new(), Vec::new());
        for pos in 0..len {
            if ending[pos].is_empty() {
                continue;
            }
            self.lookup(s, pos, &mut nodes, &mut starting, &mut prefixes);
            for &r in starting.iter().rev() {
                let row = self.matrix.row(nodes[r].left)?;
                let mut best = (i64::MAX, usize::MAX);
                for &l in ending[pos].iter().rev() {
                    let cost = nodes[l].cost
                        + Matrix::cost(row, nodes[l].right)
                        + i64::from(nodes[r].word_cost);
                    if cost < best.0 {
                        best = (cost, l);
                    }
                }
                nodes[r].cost = best.0;
                nodes[r].prev = best.1;
                let at = nodes[r].end;
                if let Some(list) = ending.get_mut(at) {
                    list.push(r);
                }
            }
        }
        // The end of the sentence joins the last position any word reaches.
        let mut last = 0;
        if let Some(pos) = (0..=len).rev().find(|&p| !ending[p].is_empty()) {
            let row = self.matrix.row(0)?;
            let mut best = i64::MAX;
            for &l in ending[pos].iter().rev() {
                let cost = nodes[l].cost + Matrix::cost(row, nodes[l].right);
                if cost < best {
                    best = cost;
                    last = l;
                }
            }
        }
        let mut path = Vec::new();
        while last != 0 && last != usize::MAX {
            path.push(last);
            last = nodes[last].prev;
        }
        path.reverse();
        path.into_iter()
            .map(|i| {
                let n = &nodes[i];
                let dictionary = if n.unknown {
                    &self.unknown
                } else {
                    &self.system
                };
                let feature = dictionary.feature(n.feature)?;
                let surface = text.get(n.start..n.end).ok_or_else(|| {
                    corrupt(
                        &dictionary.features.path,
                        "a word does not end on a character boundary",
                    )
                })?;
                Ok(Morpheme {
                    surface,
                    pron: csv_field(&feature, 9),
                    kana: csv_field(&feature, 17),
                    char_type: n.char_type,
                    unknown: n.unknown,
                    spaced: n.spaced,
                })
            })
            .collect()
    }
}

/// Field `index` of a comma-separated feature string (fields may be double-quoted); empty when
/// the feature has fewer fields, as fugashi reports a missing field.
fn csv_field(feature: &str, index: usize) -> String {
    let mut field = 0;
    let mut quoted = false;
    let mut out = String::new();
    for c in feature.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                if field == index {
                    return out;
                }
                field += 1;
            }
            c if field == index => out.push(c),
            _ => {}
        }
    }
    if field == index { out } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_fields_follow_csv_quoting() {
        let f = "補助記号,句点,*,*,*,*,*,\"a,b\",。,,。";
        assert_eq!(csv_field(f, 7), "a,b");
        assert_eq!(csv_field(f, 8), "。");
        assert_eq!(csv_field(f, 9), "");
        assert_eq!(csv_field(f, 10), "。");
        assert_eq!(csv_field(f, 17), "");
    }

    #[test]
    fn a_missing_directory_names_the_file_and_the_fetch_script() {
        let dir = std::env::temp_dir().join("avb-no-such-japanese-dictionary");
        match Tagger::open(&dir) {
            Err(TtsError::Config(message)) => {
                assert!(
                    message.contains("sys.dic") && message.contains("deploy/fetch_assets.py"),
                    "{message}"
                );
            }
            Err(other) => panic!("expected a configuration error, got {other}"),
            Ok(_) => panic!("expected a configuration error"),
        }
    }
}
