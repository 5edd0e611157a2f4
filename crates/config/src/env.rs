//! The environment side of the configuration: each section lists its variables as data (name,
//! one-line doc, setter), and every setter parses through the same few functions here, so a
//! variable's syntax never depends on which section it belongs to.

use std::fmt::Display;

/// One environment variable a section reads.
pub struct EnvVar<T> {
    pub name: &'static str,
    /// What it sets, with its default: the README lists every variable with one line.
    pub doc: &'static str,
    /// Applies a value; the error says what was expected (the loader adds name and value).
    pub set: fn(&mut T, &str) -> Result<(), String>,
}

impl<T> EnvVar<T> {
    pub const fn new(
        name: &'static str,
        doc: &'static str,
        set: fn(&mut T, &str) -> Result<(), String>,
    ) -> Self {
        Self { name, doc, set }
    }
}

/// The one boolean syntax of every variable: `1 true yes on` and `0 false no off`, any case.
/// Anything else is refused: a value read as `false` because it was spelt `TRUE` would turn a
/// setting off without a word.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected a boolean: 1, true, yes or on; 0, false, no or off (any case)".into()),
    }
}

/// A non-negative integer that fits `N`: read as `u64` first, so a negative number is refused
/// as such even where `N` is signed (validation then only sees values a variable can give).
pub fn parse_uint<N>(value: &str) -> Result<N, String>
where
    N: TryFrom<u64>,
    N::Error: Display,
{
    let n = value.parse::<u64>().map_err(|e| e.to_string())?;
    N::try_from(n).map_err(|e| e.to_string())
}

/// `None` for an empty value: setting a variable to nothing unsets an optional key.
pub fn non_empty(value: &str) -> Option<String> {
    Some(value.to_string()).filter(|v| !v.is_empty())
}

/// A comma-separated list; blanks around items and empty items are dropped.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The known name closest to `name` (ignoring case), when near enough to be a typo of it.
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_uppercase();
    // Up to one edit per four characters after the prefix, at least one and at most three:
    // short names are too alike for more, and farther than three is not a slip.
    let most = (name.len().saturating_sub("AVB_".len()) / 4).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (edit_distance(&name, &k.to_ascii_uppercase()), k))
        .filter(|(d, _)| *d <= most)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_the_usual_words_in_any_case_and_nothing_else() {
        for v in ["1", "true", "TRUE", "Yes", "on", "ON"] {
            assert_eq!(parse_bool(v), Ok(true), "{v}");
        }
        for v in ["0", "false", "False", "NO", "off", "Off"] {
            assert_eq!(parse_bool(v), Ok(false), "{v}");
        }
        for v in ["", "maybe", "2", "enabled", "t", " true"] {
            let e = parse_bool(v).expect_err(v);
            assert!(e.contains("true") && e.contains("off"), "{v}: {e}");
        }
    }

    #[test]
    fn integers_are_non_negative_and_fit_their_type() {
        assert_eq!(parse_uint::<u16>("8233"), Ok(8233));
        assert!(parse_uint::<u16>("70000").is_err());
        assert!(parse_uint::<i64>("-1").is_err());
        assert!(parse_uint::<u64>("ten").is_err());
    }

    #[test]
    fn typos_find_the_nearest_name_and_strangers_none() {
        let known = [
            "AVB_TEMPORAL_ADDRESS",
            "AVB_TEMPORAL_TLS",
            "AVB_LOG",
            "AVB_HTTP",
        ];
        assert_eq!(
            nearest("AVB_TEMPRAL_ADDRESS", known),
            Some("AVB_TEMPORAL_ADDRESS")
        );
        assert_eq!(nearest("AVB_TEMPORAL_TSL", known), Some("AVB_TEMPORAL_TLS"));
        assert_eq!(nearest("AVB_http", known), Some("AVB_HTTP"));
        assert_eq!(nearest("AVB_LOGS", known), Some("AVB_LOG"));
        assert_eq!(nearest("AVB_FOO", known), None);
        assert_eq!(nearest("AVB_SOMETHING_ELSE", known), None);
    }
}
