//! A port of `ftfy.fix_text` (ftfy 6.3.1) with its default configuration, as open_clip
//! calls it. See [`super::clean_text`] for what is and is not covered.
//!
//! Each function names the Python function it reproduces. The data (code pages and the
//! detection regexes) is generated from the installed ftfy into `ftfy_tables.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use regex::bytes::{Captures, Regex as BytesRegex};
use unicode_normalization::UnicodeNormalization;

use super::ftfy_tables::{
    ALTERED_UTF8_PATTERN, BADNESS_PATTERN, CHARMAPS, LOSSY_UTF8_PATTERN, UTF8_CONTINUATION_STRICT,
    UTF8_DETECTOR_PATTERN,
};
use super::html;

/// `TextFixerConfig.max_decode_length`: the longest segment (in code points) fixed at once.
const MAX_DECODE_LENGTH: usize = 1_000_000;

/// `ftfy.fix_text(text)` with the default `TextFixerConfig`.
///
/// The text is fixed line by line (each segment keeps its `\n`). As in ftfy, once a
/// segment contains `<` the `unescape_html` step is switched off for it and for every
/// later segment.
pub(super) fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape_html = true;
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..line_end];
        let segment_end = line.char_indices().nth(MAX_DECODE_LENGTH).map_or(line_end, |(i, _)| i);
        let segment = &rest[..segment_end];
        if unescape_html && segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_segment(segment, unescape_html));
        rest = &rest[segment_end..];
    }
    out
}

/// `ftfy.fix_and_explain(segment)`: applies every fixer in order until nothing changes.
fn fix_segment(segment: &str, unescape_html: bool) -> String {
    let mut text = segment.to_owned();
    loop {
        let orig = text.clone();
        if unescape_html {
            text = unescape_html_entities(&text);
        }
        text = fix_encoding(&text);
        text = fix_c1_controls(&text);
        text = fix_latin_ligatures(&text);
        text = fix_character_width(&text);
        text = uncurl_quotes(&text);
        text = fix_line_breaks(&text);
        // `fix_surrogates` has nothing to do: a Rust `str` cannot hold surrogates.
        text = remove_terminal_escapes(&text);
        text = remove_control_chars(&text);
        text = text.nfc().collect();
        if text == orig {
            return text;
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTML entities
// ---------------------------------------------------------------------------------------

/// `ftfy.fixes.unescape_html`: replaces each match of `&#?[0-9A-Za-z]{1,24};`.
fn unescape_html_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while let Some(off) = text[i..].find('&') {
        let start = i + off;
        let mut j = start + 1;
        if bytes.get(j) == Some(&b'#') {
            j += 1;
        }
        let run = bytes[j..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        if (1..=24).contains(&run) && bytes.get(j + run) == Some(&b';') {
            let end = j + run + 1;
            let matched = &text[start..end];
            out.push_str(&text[last..start]);
            match unescape_fixup(matched) {
                Some(replacement) => out.push_str(&replacement),
                None => out.push_str(matched),
            }
            last = end;
            i = end;
        } else {
            i = start + 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// `ftfy.fixes._unescape_fixup` for one matched `&...;` (`None`: leave it as it is).
fn unescape_fixup(matched: &str) -> Option<String> {
    if let Some(value) = ftfy_entity(matched) {
        return Some(value);
    }
    if matched.starts_with("&#") {
        let unescaped = html::unescape(matched);
        // "If html.unescape only decoded part of the string, that's not what we want."
        return (!unescaped.contains(';')).then_some(unescaped);
    }
    None
}

/// A lookup in `ftfy.chardata.HTML_ENTITIES`: every HTML5 name that ends in `;`, plus,
/// for each all-lowercase such name, its all-uppercase spelling mapped to the
/// upper-cased value when Python's `html.unescape` leaves that spelling alone.
fn ftfy_entity(matched: &str) -> Option<String> {
    let name = &matched[1..];
    if !name.ends_with(';') {
        return None;
    }
    if let Some(value) = html::entity(name) {
        return Some(value.to_owned());
    }
    if name.bytes().any(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let value = html::entity(&lower)?;
    (html::unescape(matched) == matched).then(|| value.to_uppercase())
}

// ---------------------------------------------------------------------------------------
// Small character fixers
// ---------------------------------------------------------------------------------------

/// `ftfy.fixes.fix_c1_controls`: U+0080..U+009F read as their Windows-1252 meaning.
fn fix_c1_controls(text: &str) -> String {
    if !text.chars().any(is_c1) {
        return text.to_owned();
    }
    let cp1252 = &codecs()[SLOPPY_WINDOWS_1252];
    text.chars().map(|c| if is_c1(c) { cp1252.decode(c as u8) } else { c }).collect()
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// `ftfy.fixes.fix_latin_ligatures` (`ftfy.chardata.LIGATURES`).
fn fix_latin_ligatures(text: &str) -> String {
    fn ligature(c: char) -> Option<&'static str> {
        Some(match c {
            '\u{0132}' => "IJ",
            '\u{0133}' => "ij",
            '\u{0149}' => "\u{02bc}n",
            '\u{01f1}' => "DZ",
            '\u{01f2}' => "Dz",
            '\u{01f3}' => "dz",
            '\u{01c4}' => "D\u{017d}",
            '\u{01c5}' => "D\u{017e}",
            '\u{01c6}' => "d\u{017e}",
            '\u{01c7}' => "LJ",
            '\u{01c8}' => "Lj",
            '\u{01c9}' => "lj",
            '\u{01ca}' => "NJ",
            '\u{01cb}' => "Nj",
            '\u{01cc}' => "nj",
            '\u{fb00}' => "ff",
            '\u{fb01}' => "fi",
            '\u{fb02}' => "fl",
            '\u{fb03}' => "ffi",
            '\u{fb04}' => "ffl",
            '\u{fb05}' => "\u{017f}t",
            '\u{fb06}' => "st",
            _ => return None,
        })
    }
    translate(text, ligature)
}

/// `ftfy.fixes.fix_character_width` (`ftfy.chardata.WIDTH_MAP`): U+3000 becomes a space,
/// and each of U+FF01..U+FFEF whose NFKC form differs becomes that form.
fn fix_character_width(text: &str) -> String {
    fn width(c: char) -> Option<String> {
        if c == '\u{3000}' {
            return Some(" ".to_owned());
        }
        if !('\u{ff01}'..='\u{ffef}').contains(&c) {
            return None;
        }
        let nfkc: String = std::iter::once(c).nfkc().collect();
        let mut chars = nfkc.chars();
        (chars.next() != Some(c) || chars.next().is_some()).then_some(nfkc)
    }
    if !text.chars().any(|c| c == '\u{3000}' || ('\u{ff01}'..='\u{ffef}').contains(&c)) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match width(c) {
            Some(s) => out.push_str(&s),
            None => out.push(c),
        }
    }
    out
}

/// `ftfy.fixes.uncurl_quotes`: `[\u02bc\u2018-\u201b]` to `'`, `[\u201c-\u201f]` to `"`.
fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            c => c,
        })
        .collect()
}

/// `ftfy.fixes.fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become `\n`.
fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// `ftfy.fixes.remove_terminal_escapes`: removes `\x1b\[((?:\d|;)*)([a-zA-Z])`.
fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\x1b') {
        return text.to_owned();
    }
    static ANSI: OnceLock<Regex> = OnceLock::new();
    ANSI.get_or_init(|| Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("valid regex")).replace_all(text, "").into_owned()
}

/// `ftfy.fixes.remove_control_chars` (`ftfy.chardata.CONTROL_CHARS`).
fn remove_control_chars(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !matches!(c,
                '\u{00}'..='\u{08}' | '\u{0b}' | '\u{0e}'..='\u{1f}' | '\u{7f}'
                | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
        })
        .collect()
}

/// `str.translate` with a mapping from some chars to strings.
fn translate(text: &str, map: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match map(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Mojibake: fix_encoding
// ---------------------------------------------------------------------------------------

/// Index of `sloppy-windows-1252` in [`CHARMAPS`].
const SLOPPY_WINDOWS_1252: usize = 1;
/// Index of `latin-1` in [`CHARMAPS`].
const LATIN_1: usize = 0;

/// One of ftfy's single-byte code pages, with its encoder.
struct Codec {
    name: &'static str,
    sloppy: bool,
    /// What bytes 0x80..=0xFF decode to.
    high: Vec<char>,
    /// What byte 0x1A decodes to.
    sub: char,
    /// The inverse map for every char that is not plain ASCII other than U+001A.
    encode: HashMap<char, u8>,
}

impl Codec {
    fn decode(&self, byte: u8) -> char {
        match byte {
            0x1A => self.sub,
            0x80..=0xFF => self.high[usize::from(byte - 0x80)],
            _ => char::from(byte),
        }
    }

    /// `text.encode(codec)`, or `None` where `possible_encoding(text, codec)` is false.
    fn encode(&self, text: &str) -> Option<Vec<u8>> {
        text.chars()
            .map(|c| match c {
                '\u{00}'..='\u{7f}' if c != '\u{1a}' => Some(c as u8),
                _ => self.encode.get(&c).copied(),
            })
            .collect()
    }
}

fn codecs() -> &'static [Codec] {
    static CODECS: OnceLock<Vec<Codec>> = OnceLock::new();
    CODECS.get_or_init(|| {
        assert_eq!(CHARMAPS[LATIN_1].name, "latin-1");
        assert_eq!(CHARMAPS[SLOPPY_WINDOWS_1252].name, "sloppy-windows-1252");
        CHARMAPS
            .iter()
            .map(|cm| {
                let high: Vec<char> = cm.high.chars().collect();
                assert_eq!(high.len(), 128, "code page {}", cm.name);
                let mut encode: HashMap<char, u8> =
                    (0x80u8..=0xFF).zip(high.iter().copied()).map(|(b, c)| (c, b)).collect();
                encode.insert(cm.sub, 0x1A);
                Codec { name: cm.name, sloppy: cm.sloppy, high, sub: cm.sub, encode }
            })
            .collect()
    })
}

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("ftfy table regexes are valid"))
}

fn bytes_regex(cell: &'static OnceLock<BytesRegex>, pattern: &str) -> &'static BytesRegex {
    cell.get_or_init(|| BytesRegex::new(pattern).expect("ftfy table regexes are valid"))
}

/// `ftfy.badness.is_bad`: whether the text contains a sequence that looks like mojibake.
fn is_bad(text: &str) -> bool {
    static BADNESS: OnceLock<Regex> = OnceLock::new();
    regex(&BADNESS, BADNESS_PATTERN).is_match(text)
}

/// `ftfy.fix_encoding`: repeats one fixing step until the text stops changing.
fn fix_encoding(text: &str) -> String {
    let mut text = text.to_owned();
    loop {
        let next = fix_encoding_one_step(&text);
        if next == text {
            return text;
        }
        text = next;
    }
}

/// `ftfy._fix_encoding_one_step_and_explain` with the default configuration.
fn fix_encoding_one_step(text: &str) -> String {
    if text.is_ascii() || !is_bad(text) {
        return text.to_owned();
    }
    let mut possible_latin_1 = false;
    for (index, codec) in codecs().iter().enumerate() {
        let Some(mut bytes) = codec.encode(text) else {
            continue;
        };
        if index == LATIN_1 {
            possible_latin_1 = true;
        }
        static ALTERED_UTF8: OnceLock<BytesRegex> = OnceLock::new();
        if codec.name != "macroman" && bytes_regex(&ALTERED_UTF8, ALTERED_UTF8_PATTERN).is_match(&bytes) {
            bytes = restore_byte_a0(&bytes);
        }
        if codec.sloppy {
            static LOSSY_UTF8: OnceLock<BytesRegex> = OnceLock::new();
            bytes =
                bytes_regex(&LOSSY_UTF8, LOSSY_UTF8_PATTERN).replace_all(&bytes, "\u{fffd}".as_bytes()).into_owned();
        }
        let decoded = if bytes.contains(&0xED) || bytes.contains(&0xC0) {
            decode_utf8_variants(&bytes)
        } else {
            String::from_utf8(bytes).ok()
        };
        if let Some(fixed) = decoded {
            return fixed;
        }
    }

    if utf8_detector_find(text, 0).is_some() {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return fixed;
        }
    }

    // ftfy then asks whether "windows-1252" is among the possible encodings, but that list
    // only ever holds "sloppy-windows-1252", so it always goes on to this branch.
    if possible_latin_1
        && let Some(fixed) = latin_1_as_windows_1252(text)
        && fixed != text
    {
        return fixed;
    }

    if text.chars().any(is_c1) {
        return fix_c1_controls(text);
    }
    text.to_owned()
}

/// `text.encode("latin-1").decode("windows-1252")` (strict: bytes 0x81, 0x8D, 0x8F, 0x90
/// and 0x9D are undefined and make it fail).
fn latin_1_as_windows_1252(text: &str) -> Option<String> {
    let cp1252 = &codecs()[SLOPPY_WINDOWS_1252];
    text.chars()
        .map(|c| match c {
            '\u{81}' | '\u{8d}' | '\u{8f}' | '\u{90}' | '\u{9d}' => None,
            _ if is_c1(c) => Some(cp1252.decode(c as u8)),
            _ => Some(c),
        })
        .collect()
}

/// `ftfy.fixes.restore_byte_a0`: puts back the 0xA0 bytes that became spaces.
fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    // A_GRAVE_WORD_RE = b"\xc3 (?! |quele|quela|quilo|s )", replaced by b"\xc3\xa0 ".
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0xC3 && bytes.get(i + 1) == Some(&b' ') {
            let after = &bytes[i + 2..];
            let excepted = [&b" "[..], b"quele", b"quela", b"quilo", b"s "].iter().any(|p| after.starts_with(p));
            if !excepted {
                out.extend_from_slice(b"\xc3\xa0 ");
                i += 2;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    static ALTERED_UTF8: OnceLock<BytesRegex> = OnceLock::new();
    bytes_regex(&ALTERED_UTF8, ALTERED_UTF8_PATTERN)
        .replace_all(&out, |caps: &Captures<'_>| {
            caps[0].iter().map(|&b| if b == b' ' { 0xA0 } else { b }).collect::<Vec<u8>>()
        })
        .into_owned()
}

/// The first match of `ftfy.chardata.UTF8_DETECTOR_RE` at or after byte `from`: the
/// pattern proper, plus its negative lookbehind (the previous char must not be a
/// `utf8_continuation_strict` char), which Rust's `regex` cannot express.
fn utf8_detector_find(text: &str, from: usize) -> Option<(usize, usize)> {
    static DETECTOR: OnceLock<Regex> = OnceLock::new();
    static STRICT: OnceLock<Regex> = OnceLock::new();
    let detector = regex(&DETECTOR, UTF8_DETECTOR_PATTERN);
    let strict = STRICT.get_or_init(|| Regex::new(&format!("^{UTF8_CONTINUATION_STRICT}$")).expect("valid regex"));
    let mut pos = from;
    while pos <= text.len() {
        let m = detector.find_at(text, pos)?;
        let prev = text[..m.start()].chars().next_back();
        let blocked = prev.is_some_and(|c| strict.is_match(c.encode_utf8(&mut [0; 4])));
        if !blocked {
            return Some((m.start(), m.end()));
        }
        let first = text[m.start()..].chars().next().map_or(1, char::len_utf8);
        pos = m.start() + first;
    }
    None
}

/// `ftfy.fixes.decode_inconsistent_utf8`: fixes each detected run of UTF-8 mojibake on
/// its own, when the run is shorter than the text and looks bad by itself.
fn decode_inconsistent_utf8(text: &str) -> String {
    let text_len = text.chars().count();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    while let Some((start, end)) = utf8_detector_find(text, last) {
        out.push_str(&text[last..start]);
        let substr = &text[start..end];
        if substr.chars().count() < text_len && is_bad(substr) {
            out.push_str(&fix_encoding(substr));
        } else {
            out.push_str(substr);
        }
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Decoding with ftfy's `utf-8-variants` codec: strict UTF-8, except that `C0 80` is
/// U+0000 (Java) and a CESU-8 surrogate pair (six bytes) is the char it encodes.
///
/// This follows `IncrementalDecoder._buffer_decode_step` (including how Python's `$`
/// also matches before a final `\n` in its byte patterns). `None` where Python raises
/// `UnicodeDecodeError`.
fn decode_utf8_variants(bytes: &[u8]) -> Option<String> {
    let n = bytes.len();
    // Python `$` at position `q`: the end, or just before a final b"\n".
    let at_end = |q: usize| q == n || (q + 1 == n && bytes[q] == b'\n');
    let cont = |q: usize, lo: u8, hi: u8| q < n && (lo..=hi).contains(&bytes[q]);
    // SPECIAL_BYTES_RE = NULL_EXPR | CESU8_EXPR | SURROGATE_EXPR, matched at `p`.
    let special_at = |p: usize| match bytes[p] {
        0xC0 => cont(p + 1, 0x80, 0x80) || at_end(p + 1),
        0xED => {
            if cont(p + 1, 0xA0, 0xBF) {
                cont(p + 2, 0x80, 0xBF) || at_end(p + 2)
            } else {
                at_end(p + 1)
            }
        }
        _ => false,
    };
    // CESU8_RE.match at `p`: ED ([A0-AF]|$) ([80-BF]|$) (ED|$) ([B0-BF]|$) ([80-BF]|$).
    let cesu8_at = |p: usize| {
        let mut q = p + 1;
        for (lo, hi) in [(0xA0, 0xAF), (0x80, 0xBF), (0xED, 0xED), (0xB0, 0xBF), (0x80, 0xBF)] {
            if cont(q, lo, hi) {
                q += 1;
            } else if !at_end(q) {
                return false;
            }
        }
        true
    };

    let mut out = String::with_capacity(n);
    let mut pos = 0;
    while pos < n {
        let Some(cutoff) = (pos..n).find(|&p| special_at(p)) else {
            out.push_str(std::str::from_utf8(&bytes[pos..]).ok()?);
            break;
        };
        if cutoff > pos {
            out.push_str(std::str::from_utf8(&bytes[pos..cutoff]).ok()?);
            pos = cutoff;
            continue;
        }
        let input = &bytes[pos..];
        if input[0] == 0xC0 {
            if input.len() > 1 {
                out.push('\0');
                pos += 2;
                continue;
            }
            return None;
        }
        if input.len() < 6 || !cesu8_at(pos) {
            // Python decodes the rest (or the next three bytes) as plain UTF-8, which
            // fails on a surrogate.
            return None;
        }
        let codepoint = ((u32::from(input[1]) & 0x0F) << 16)
            + ((u32::from(input[2]) & 0x3F) << 10)
            + ((u32::from(input[4]) & 0x0F) << 6)
            + (u32::from(input[5]) & 0x3F)
            + 0x10000;
        out.push(char::from_u32(codepoint)?);
        pos += 6;
    }
    Some(out)
}
