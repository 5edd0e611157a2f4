//! Arabic numbers read as kana, as misaki reads them in Japanese text (its `num2kana.py`, from
//! Greatdane's Convert-Numbers-to-Japanese, MIT): a run of up to nine digits becomes its reading
//! in hiragana (`1234` → せんにひゃくさんじゅうよん, `300` → さんびゃく, `10000` → いちまん,
//! leading zeros dropped, `0` → ゼロ). Digits are taken run by run, so `3.14` is three, a period
//! and fourteen, as in the reference.
//!
//! The reference fails on ten digits or more; those are read digit by digit here (how phone
//! and account numbers are said), each digit a word of its own.

/// Readings of the digits; zero is written in katakana, as the reference writes it.
const DIGITS: [&str; 10] = [
    "ゼロ",
    "いち",
    "に",
    "さん",
    "よん",
    "ご",
    "ろく",
    "なな",
    "はち",
    "きゅう",
];
const TEN: &str = "じゅう";
const HUNDRED: &str = "ひゃく";
const THOUSAND: &str = "せん";
const TEN_THOUSAND: &str = "まん";
const HUNDRED_MILLION: &str = "おく";
/// The longest number read as a whole.
pub const MAX_DIGITS: usize = 9;

/// The kana a run of ASCII digits is read as. Up to [`MAX_DIGITS`] digits as one number, longer
/// runs digit by digit with a space between digits.
pub fn digits_to_kana(digits: &str) -> String {
    if digits.len() > MAX_DIGITS {
        return digits.bytes().map(digit).collect::<Vec<_>>().join(" ");
    }
    // Leading zeros are dropped, but a lone zero stays.
    let start = digits
        .bytes()
        .position(|d| d != b'0')
        .unwrap_or(digits.len().saturating_sub(1));
    let n = &digits[start..];
    match n.len() {
        0 => String::new(),
        1 => digit(n.as_bytes()[0]).to_string(),
        2 => two(n),
        3 => three(n),
        4 => four(n, true),
        _ => more(n),
    }
}

fn digit(d: u8) -> &'static str {
    DIGITS
        .get(usize::from(d.wrapping_sub(b'0')))
        .copied()
        .unwrap_or_default()
}

fn first(n: &str) -> u8 {
    n.as_bytes().first().copied().unwrap_or(b'0')
}

fn second(n: &str) -> u8 {
    n.as_bytes().get(1).copied().unwrap_or(b'0')
}

/// 10–99 (a leading zero reads as the last digit alone).
fn two(n: &str) -> String {
    let (a, b) = (first(n), second(n));
    if a == b'0' {
        digit(b).to_string()
    } else if n == "10" {
        TEN.to_string()
    } else if a == b'1' {
        format!("{TEN}{}", digit(b))
    } else if b == b'0' {
        format!("{}{TEN}", digit(a))
    } else {
        format!("{}{TEN}{}", digit(a), digit(b))
    }
}

/// 100–999, with the sound changes of 300, 600 and 800.
fn three(n: &str) -> String {
    let mut out = match first(n) {
        b'1' => HUNDRED.to_string(),
        b'3' => "さんびゃく".to_string(),
        b'6' => "ろっぴゃく".to_string(),
        b'8' => "はっぴゃく".to_string(),
        d => format!("{}{HUNDRED}", digit(d)),
    };
    let rest = &n[1..];
    if rest != "00" {
        if second(n) == b'0' {
            out.push_str(digit(n.as_bytes().get(2).copied().unwrap_or(b'0')));
        } else {
            out.push_str(&two(rest));
        }
    }
    out
}

/// 1000–9999; `standalone` is false for the last four digits of a longer number, where a
/// leading one thousand reads いっせん.
fn four(n: &str, standalone: bool) -> String {
    if n == "0000" {
        return String::new();
    }
    let n = n.trim_start_matches('0');
    match n.len() {
        1 => return digit(first(n)).to_string(),
        2 => return two(n),
        3 => return three(n),
        _ => {}
    }
    let mut out = match first(n) {
        b'1' if standalone => THOUSAND.to_string(),
        b'1' => "いっせん".to_string(),
        b'3' => "さんぜん".to_string(),
        b'8' => "はっせん".to_string(),
        d => format!("{}{THOUSAND}", digit(d)),
    };
    if &n[1..] != "000" {
        if second(n) == b'0' {
            out.push_str(&two(&n[2..]));
        } else {
            out.push_str(&three(&n[1..]));
        }
    }
    out
}

/// 10,000–999,999,999: what comes before the last four digits, in 万 and 億, then those four.
fn more(n: &str) -> String {
    let (high, low) = n.split_at(n.len() - 4);
    let mut out = match high.len() {
        1 => format!("{}{TEN_THOUSAND}", digit(first(high))),
        2 => format!("{}{TEN_THOUSAND}", two(high)),
        3 => format!("{}{TEN_THOUSAND}", three(high)),
        4 => format!("{}{TEN_THOUSAND}", four(high, false)),
        _ => {
            let middle = &high[1..];
            let mut out = format!(
                "{}{HUNDRED_MILLION}{}",
                digit(first(high)),
                four(middle, false)
            );
            if middle != "0000" {
                out.push_str(TEN_THOUSAND);
            }
            out
        }
    };
    out.push_str(&four(low, false));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// misaki 0.9.4's `num2kana.Convert` on these inputs.
    #[test]
    fn numbers_read_as_the_reference_reads_them() {
        for (digits, kana) in [
            ("0", "ゼロ"),
            ("000", "ゼロ"),
            ("7", "なな"),
            ("10", "じゅう"),
            ("14", "じゅうよん"),
            ("20", "にじゅう"),
            ("99", "きゅうじゅうきゅう"),
            ("100", "ひゃく"),
            ("105", "ひゃくご"),
            ("300", "さんびゃく"),
            ("610", "ろっぴゃくじゅう"),
            ("1000", "せん"),
            ("1005", "せんご"),
            ("1234", "せんにひゃくさんじゅうよん"),
            ("3000", "さんぜん"),
            ("8800", "はっせんはっぴゃく"),
            ("0042", "よんじゅうに"),
            ("10000", "いちまん"),
            ("11000", "いちまんいっせん"),
            ("100000", "じゅうまん"),
            ("2025", "にせんにじゅうご"),
            ("1000000", "ひゃくまん"),
            (
                "12345678",
                "いっせんにひゃくさんじゅうよんまんごせんろっぴゃくななじゅうはち",
            ),
            ("100000000", "いちおく"),
            ("100010000", "いちおくいちまん"),
            (
                "987654321",
                "きゅうおくはっせんななひゃくろくじゅうごまんよんせんさんびゃくにじゅういち",
            ),
        ] {
            assert_eq!(digits_to_kana(digits), kana, "{digits}");
        }
    }

    #[test]
    fn ten_digits_or_more_are_read_digit_by_digit() {
        assert_eq!(
            digits_to_kana("0901234567"),
            "ゼロ きゅう ゼロ いち に さん よん ご ろく なな"
        );
    }
}
