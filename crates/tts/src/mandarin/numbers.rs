//! Arabic numbers in Chinese text read as Chinese numerals, with the rules of the reference
//! pipeline Kokoro's Mandarin voices were trained with (cn2an 0.5's `an2cn` transform), in its
//! order: ranges before a measure word (`3-5个` → 三到五个), dates (the year digit by digit:
//! `2024年3月15日` → 二零二四年三月十五日), fractions (`1/3` → 三分之一), percentages
//! (`-3.8%` → 百分之负三点八), degrees Celsius (`25℃` → 二十五摄氏度), then every other number
//! (`1010` → 一千零一十, `0.25` → 零点二五, a leading `-` → 负). A number it cannot read (more
//! than 16 integer digits) stays as written, as in the reference.

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
const UNITS: [&str; 16] = [
    "", "十", "百", "千", "万", "十", "百", "千", "亿", "十", "百", "千", "万", "十", "百", "千",
];
/// Words a range must be followed by to read as "from … to …".
const MEASURE_WORDS: [&str; 34] = [
    "斤", "克", "千克", "公斤", "吨", "米", "厘米", "毫米", "公里", "升", "毫升", "元", "角", "分",
    "个", "只", "条", "张", "块", "瓶", "杯", "份", "本", "辆", "台", "匹", "头", "位", "亩",
    "小时", "分钟", "秒", "天", "半",
];

/// `text` with its Arabic numbers read as Chinese numerals.
pub fn an2cn(text: &str) -> String {
    // Full-width digits are digits to the reference too; a full-width `％` (which the reference
    // leaves unread, and the model cannot say) is a percent sign.
    let text: String = text
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '％' => '%',
            c => c,
        })
        .collect();
    let text = substitute(&text, range);
    let text = substitute(&text, date);
    let text = substitute(&text, fraction);
    let text = substitute(&text, percent);
    let text = substitute(&text, celsius);
    substitute(&text, number)
}

/// A match at the start of `rest`: how many characters it takes, and what they become (`None`:
/// a number too long to read, which stays as written).
type Matcher = fn(&[char]) -> Option<(usize, Option<String>)>;

/// Replaces every match of `matcher`, scanning left to right as a regular expression
/// substitution does (after a match, the scan goes on behind it, even when the match could not
/// be read).
fn substitute(text: &str, matcher: Matcher) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match matcher(&chars[i..]) {
            Some((taken, replacement)) if taken > 0 => {
                match replacement {
                    Some(r) => out.push_str(&r),
                    None => out.extend(&chars[i..i + taken]),
                }
                i += taken;
            }
            _ => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

fn digit_run(s: &[char]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `\d+(\.\d+)?` at the start of `s`: its length.
fn decimal(s: &[char]) -> Option<usize> {
    let whole = digit_run(s);
    if whole == 0 {
        return None;
    }
    if s.get(whole) == Some(&'.') {
        let frac = digit_run(&s[whole + 1..]);
        if frac > 0 {
            return Some(whole + 1 + frac);
        }
    }
    Some(whole)
}

/// `-?(\d+\.)?\d+` at the start of `s`: its length.
fn signed_number(s: &[char]) -> Option<usize> {
    let sign = usize::from(s.first() == Some(&'-'));
    decimal(&s[sign..]).map(|n| sign + n)
}

fn text_of(s: &[char]) -> String {
    s.iter().collect()
}

/// `3-5个` → 三到五个.
fn range(s: &[char]) -> Option<(usize, Option<String>)> {
    let a = decimal(s)?;
    if s.get(a) != Some(&'-') {
        return None;
    }
    let b = decimal(&s[a + 1..])?;
    let end = a + 1 + b;
    let rest = text_of(&s[end..]);
    if !MEASURE_WORDS.iter().any(|w| rest.starts_with(w)) {
        return None;
    }
    let read = low(&text_of(&s[..a]))
        .zip(low(&text_of(&s[a + 1..end])))
        .map(|(low_a, low_b)| format!("{low_a}到{low_b}"));
    Some((end, read))
}

/// `(\d{2,4}年)?(\d{1,2}月)?(\d{1,2}日)?`: the year read digit by digit, month and day as numbers.
fn date(s: &[char]) -> Option<(usize, Option<String>)> {
    let mut at = 0;
    let mut out = String::new();
    // Up to four digits before 年, as many as fit (the longest first, as a greedy match).
    let run = digit_run(s);
    if let Some(n) = (2..=run.min(4)).rev().find(|&n| s.get(n) == Some(&'年')) {
        out.extend(s[..n].iter().map(|d| DIGITS[digit(*d)]));
        out.push('年');
        at = n + 1;
    }
    for (unit, longest) in [('月', 2), ('日', 2)] {
        let run = digit_run(&s[at..]);
        if let Some(n) = (1..=run.min(longest))
            .rev()
            .find(|&n| s.get(at + n) == Some(&unit))
        {
            out.push_str(&low(&text_of(&s[at..at + n]))?); // two digits at most: always read
            out.push(unit);
            at += n + 1;
        }
    }
    (at > 0).then_some((at, Some(out)))
}

/// `\d+/\d+` → denominator 分之 numerator.
fn fraction(s: &[char]) -> Option<(usize, Option<String>)> {
    let a = digit_run(s);
    if a == 0 || s.get(a) != Some(&'/') {
        return None;
    }
    let b = digit_run(&s[a + 1..]);
    if b == 0 {
        return None;
    }
    let end = a + 1 + b;
    let read = low(&text_of(&s[..a]))
        .zip(low(&text_of(&s[a + 1..end])))
        .map(|(num, den)| format!("{den}分之{num}"));
    Some((end, read))
}

/// `-?(\d+\.)?\d+%` → 百分之 number.
fn percent(s: &[char]) -> Option<(usize, Option<String>)> {
    let n = signed_number(s)?;
    if s.get(n) != Some(&'%') {
        return None;
    }
    Some((n + 1, low(&text_of(&s[..n])).map(|x| format!("百分之{x}"))))
}

/// `\d+℃` → number 摄氏度.
fn celsius(s: &[char]) -> Option<(usize, Option<String>)> {
    let n = digit_run(s);
    if n == 0 || s.get(n) != Some(&'℃') {
        return None;
    }
    Some((n + 1, low(&text_of(&s[..n])).map(|x| format!("{x}摄氏度"))))
}

/// Any other number.
fn number(s: &[char]) -> Option<(usize, Option<String>)> {
    let n = signed_number(s)?;
    Some((n, low(&text_of(&s[..n]))))
}

fn digit(c: char) -> usize {
    c.to_digit(10).map_or(0, |d| d as usize)
}

/// A number (`-?\d+(\.\d+)?`) in Chinese numerals; `None` past 16 integer digits.
fn low(s: &str) -> Option<String> {
    let (sign, s) = match s.strip_prefix('-') {
        Some(rest) => ("负", rest),
        None => ("", s),
    };
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let mut out = String::from(sign);
    out.push_str(&integer(whole)?);
    if let Some(frac) = frac {
        out.push('点');
        out.extend(frac.chars().take(16).map(|d| DIGITS[digit(d)]));
    }
    Some(out)
}

fn integer(whole: &str) -> Option<String> {
    let trimmed = whole.trim_start_matches('0');
    let digits: Vec<usize> = if trimmed.is_empty() {
        vec![0]
    } else {
        trimmed.chars().map(digit).collect()
    };
    let len = digits.len();
    if len > UNITS.len() {
        return None;
    }
    let mut out = String::new();
    for (i, &d) in digits.iter().enumerate() {
        let place = len - i - 1;
        if d != 0 {
            out.push(DIGITS[d]);
            out.push_str(UNITS[place]);
        } else {
            if place.is_multiple_of(4) {
                out.push('零');
                out.push_str(UNITS[place]);
            }
            if i > 0 && !out.ends_with('零') {
                out.push('零');
            }
        }
    }
    let mut out = out
        .replace("零零", "零")
        .replace("零万", "万")
        .replace("零亿", "亿")
        .replace("亿万", "亿")
        .trim_matches('零')
        .to_string();
    // 一万零二千 is read 一万二千: no 零 between 万/亿 and a thousands digit.
    for unit in ['万', '亿'] {
        for d in &DIGITS[1..] {
            out = out.replace(&format!("{unit}零{d}千"), &format!("{unit}{d}千"));
        }
    }
    if out.starts_with("一十") {
        out.remove(0);
    }
    if out.is_empty() {
        out.push('零');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_the_reference_reads_them() {
        for (n, read) in [
            ("0", "零"),
            ("10", "十"),
            ("15", "十五"),
            ("110", "一百一十"),
            ("1010", "一千零一十"),
            ("10010", "一万零一十"),
            ("100000", "十万"),
            ("100000001", "一亿零一"),
            ("1000100000", "十亿零一十万"),
            ("13800138000", "一百三十八亿零一十三万八千"),
            ("12002000", "一千二百万二千"),
            ("007", "七"),
        ] {
            assert_eq!(low(n).as_deref(), Some(read), "{n}");
        }
        assert_eq!(low("0.10").as_deref(), Some("零点一零"));
        assert_eq!(low("-0").as_deref(), Some("负零"));
        assert_eq!(low("12345678901234567"), None, "past 16 digits");
    }

    #[test]
    fn text_forms_follow_the_reference_order() {
        for (text, read) in [
            ("3-5个小时", "三到五个小时"),
            ("2024年3月15日", "二零二四年三月十五日"),
            ("10年", "一零年"),
            ("5年", "五年"),
            ("12345年", "一二三四五年"),
            ("1/3", "三分之一"),
            ("-3.8%", "百分之负三点八"),
            ("50％", "百分之五十"),
            ("25℃", "二十五摄氏度"),
            ("2024-03-15", "二千零二十四负三负十五"),
            ("价格是12.50元", "价格是十二点五零元"),
            ("１２３", "一百二十三"),
            ("12345678901234567", "12345678901234567"),
        ] {
            assert_eq!(an2cn(text), read, "{text}");
        }
    }
}
