//! Python's `html.unescape` (CPython 3.11 `Lib/html/__init__.py`), reproduced exactly.
//!
//! The named references come from [`htmlize::ENTITIES`], which is generated from the
//! same WHATWG `entities.json` as Python's `html.entities.html5` (2,231 names, including
//! the 106 legacy names that may appear without a trailing semicolon).

/// Looks up a named reference, `name` being the text after `&` (with its `;` if any).
pub(super) fn entity(name: &str) -> Option<&'static str> {
    let mut key = [0u8; 40];
    let len = name.len() + 1;
    if len > key.len() {
        return None;
    }
    key[0] = b'&';
    key[1..len].copy_from_slice(name.as_bytes());
    htmlize::ENTITIES.get(&key[..len]).map(|v| std::str::from_utf8(v).expect("htmlize entities are UTF-8"))
}

/// Python's `html.unescape(s)`: replaces every match of
/// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` by `_replace_charref`.
pub(super) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match charref_len(after) {
            Some(len) => {
                replace_charref(&after[..len], &mut out);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Byte length of the `_charref` group starting right after an `&`, if one matches.
fn charref_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let with_semicolon = |end: usize| {
        if b.get(end) == Some(&b';') { end + 1 } else { end }
    };
    if b.first() == Some(&b'#') {
        let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            return Some(with_semicolon(1 + digits));
        }
        if matches!(b.get(1), Some(b'x' | b'X')) {
            let hex = b[2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            if hex > 0 {
                return Some(with_semicolon(2 + hex));
            }
        }
        // `#` is excluded from the named-reference class.
        return None;
    }
    let mut end = 0;
    for (count, (i, c)) in s.char_indices().enumerate() {
        if count == 32 || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';') {
            break;
        }
        end = i + c.len_utf8();
    }
    (end > 0).then(|| with_semicolon(end))
}

/// Python's `html._replace_charref` for the group `s` (the text after `&`).
fn replace_charref(s: &str, out: &mut String) {
    if let Some(num) = s.strip_prefix('#') {
        let num = num.trim_end_matches(';');
        let value = match num.strip_prefix(['x', 'X']) {
            Some(hex) => parse_saturating(hex, 16),
            None => parse_saturating(num, 10),
        };
        push_numeric(value, out);
        return;
    }
    if let Some(v) = entity(s) {
        out.push_str(v);
        return;
    }
    // The longest prefix (at least 2 chars, shorter than `s`) that is a known name.
    let boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in boundaries.iter().rev() {
        if let Some(v) = entity(&s[..cut]) {
            out.push_str(v);
            out.push_str(&s[cut..]);
            return;
        }
    }
    out.push('&');
    out.push_str(s);
}

/// Parses ASCII digits, saturating at `u64::MAX` (anything above 0x10FFFF behaves alike).
fn parse_saturating(digits: &str, radix: u32) -> u64 {
    digits.chars().fold(0u64, |acc, c| {
        let d = u64::from(c.to_digit(radix).expect("digits were checked by the scanner"));
        acc.saturating_mul(u64::from(radix)).saturating_add(d)
    })
}

/// Python's handling of a numeric reference: `_invalid_charrefs`, surrogates and
/// out-of-range values (U+FFFD), `_invalid_codepoints` (removed), else the code point.
fn push_numeric(num: u64, out: &mut String) {
    if let Some(c) = invalid_charref(num) {
        out.push(c);
        return;
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        out.push('\u{FFFD}');
        return;
    }
    // `_invalid_codepoints`: C0/C1 controls other than whitespace, noncharacters.
    let control = matches!(num, 0x1..=0x8 | 0xB | 0xE..=0x1F | 0x7F..=0x9F);
    let noncharacter = (0xFDD0..=0xFDEF).contains(&num) || (num & 0xFFFE) == 0xFFFE;
    let is_invalid_codepoint = control || noncharacter;
    if is_invalid_codepoint {
        return;
    }
    let c = u32::try_from(num).ok().and_then(char::from_u32).expect("range checked above");
    out.push(c);
}

/// Python's `html._invalid_charrefs`: NUL, CR and the Windows-1252 remapping of 0x80..=0x9F.
fn invalid_charref(num: u64) -> Option<char> {
    const C1: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}',
        '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8D}', '\u{017D}', '\u{8F}', '\u{90}', '\u{2018}',
        '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}',
        '\u{203A}', '\u{0153}', '\u{9D}', '\u{017E}', '\u{0178}',
    ];
    match num {
        0 => Some('\u{FFFD}'),
        0x0D => Some('\r'),
        0x80..=0x9F => Some(C1[(num - 0x80) as usize]),
        _ => None,
    }
}
