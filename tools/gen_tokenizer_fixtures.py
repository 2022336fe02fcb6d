#!/usr/bin/env python3
"""Generate the reference data for the CLIP tokenizer in `src/tokenizer.rs`.

Run with the reference virtual environment (open_clip_torch 3.3, ftfy 6.3, regex):

    .venv-ref/bin/python tools/gen_tokenizer_fixtures.py            # corpus + tables
    .venv-ref/bin/python tools/gen_tokenizer_fixtures.py --check    # verify, write nothing

It writes three things, all derived from the installed Python packages:

* `tests/fixtures/tokenizer/corpus.json`: a deterministic corpus (hand-written cases,
  generated mojibake and seeded random strings) with, for every string, open_clip's
  cleaned text (`SimpleTokenizer.clean_fn`, i.e. ftfy + html.unescape x2 + whitespace
  collapse + lower) and open_clip's token ids (`open_clip.tokenize`, context length 77)
  up to and including the end-of-text token (the zero padding is left out). A smaller
  list, `length_cases`, holds the ids of some strings at other context lengths.
* `assets/clip-merges.txt`: the 48,894 BPE merges open_clip actually uses (lines
  1..=48894 of `bpe_simple_vocab_16e6.txt.gz`, i.e. `merges[1:49152-256-2+1]`).
* `src/tokenizer/ftfy_tables.rs`: the data tables of the Rust port of ftfy's
  `fix_encoding` (the single-byte code pages ftfy tries, and its two detection regexes
  translated from Python `re` syntax to Rust `regex` syntax).
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import os
import random
import sys
import unicodedata

import ftfy
import regex
import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-* codecs)
import open_clip
from ftfy import badness, chardata
from open_clip import tokenizer as oc_tok

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_PATH = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.json")
MERGES_PATH = os.path.join(ROOT, "assets", "clip-merges.txt")
TABLES_PATH = os.path.join(ROOT, "src", "tokenizer", "ftfy_tables.rs")

CONTEXT_LENGTH = 77
SEED = 20240607

REGEX_UNASSIGNED = regex.compile(r"\p{Cn}")

# Python's `str.isspace()` characters: what `re`'s `\s`, `str.split()` and `str.strip()` use.
PY_SPACES = "".join(chr(i) for i in range(0x110000) if chr(i).isspace())


# ---------------------------------------------------------------------------------------
# Merges asset
# ---------------------------------------------------------------------------------------


def used_merges() -> list[str]:
    lines = gzip.open(oc_tok.default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    assert len(merges) == 48894
    for m in merges:
        parts = m.split(" ")
        assert len(parts) == 2 and all(parts), m
    return merges


def merges_text() -> str:
    return "\n".join(used_merges()) + "\n"


# ---------------------------------------------------------------------------------------
# ftfy tables
# ---------------------------------------------------------------------------------------


def rust_str(s: str) -> str:
    """A Rust string literal for `s` (non-ASCII and non-printable chars escaped)."""
    out = ['"']
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("\\u{%04x}" % ord(ch))
    out.append('"')
    return "".join(out)


def class_literal(ch: str) -> str:
    """A character inside a Rust regex character class, escaped where Rust needs it."""
    if ch in "[]\\&~^":
        return "\\" + ch
    return ch


def py_re_to_rust(pattern: str, verbose: bool) -> str:
    """Translate the subset of Python `re` syntax ftfy uses into Rust `regex` syntax.

    Handles verbose mode (whitespace and comments outside classes dropped, exactly
    Python's set " \\t\\n\\r\\v\\f"), `\\xHH` escapes, and Python's Unicode `\\s` / `\\w`
    (`str.isspace()` characters / `[\\p{L}\\p{N}_]`, which equals Python 3.11's `\\w`;
    checked below). Rust classes also get `&`, `~` and `[` escaped, and the result is
    checked for Rust's class-set operators (`--`, `&&`, `~~`).
    """
    out: list[str] = []
    i = 0
    in_class = False
    class_start = False
    py_verbose_ws = " \t\n\r\v\f"
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nx = pattern[i + 1]
            if nx == "x":
                lit = chr(int(pattern[i + 2 : i + 4], 16))
                i += 4
                out.append(class_literal(lit) if in_class else "\\x%02x" % ord(lit))
            elif nx == "s":
                inner = "".join(class_literal(c) for c in PY_SPACES)
                out.append(inner if in_class else "[" + inner + "]")
                i += 2
            elif nx == "w":
                out.append("\\p{L}\\p{N}_" if in_class else "[\\p{L}\\p{N}_]")
                i += 2
            else:
                raise ValueError(f"unsupported escape \\{nx}")
            class_start = False
            continue
        if in_class:
            if ch == "^" and class_start:
                out.append("^")
            elif ch == "]" and not class_start:
                in_class = False
                out.append("]")
            else:
                out.append(ch if ch == "-" else class_literal(ch))
            class_start = False
            i += 1
            continue
        if verbose and ch in py_verbose_ws:
            i += 1
            continue
        if verbose and ch == "#":
            while i < len(pattern) and pattern[i] != "\n":
                i += 1
            continue
        if ch == "[":
            in_class = True
            class_start = True
            out.append("[")
            i += 1
            continue
        if ch.isspace():
            out.append("\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u{%04x}" % ord(ch))
        else:
            out.append(ch)
        i += 1
    assert not in_class
    result = "".join(out)
    for op in ("--", "&&", "~~"):
        assert op not in result, op
    return result


def bytes_re_to_rust(pattern: bytes) -> str:
    """A Python `re` bytes pattern made only of literal bytes, classes and `|`, for
    Rust's `regex::bytes` (bytes >= 0x80 and controls written as `\\xHH`)."""
    assert b"\\" not in pattern
    out = ["(?-u)"]
    for b in pattern:
        if b >= 0x80 or b < 0x20 or b == 0x7F:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def check_word_class() -> None:
    """Python 3.11's `re` `\\w` is exactly `[\\p{L}\\p{N}_]` (Unicode 14)."""
    for i in range(0x110000):
        c = chr(i)
        py_word = c.isalnum() or c == "_"
        ln = unicodedata.category(c)[0] in "LN" or c == "_"
        assert py_word == ln, hex(i)


def ftfy_tables_rs() -> str:
    check_word_class()
    lines = [
        "// @generated by tools/gen_tokenizer_fixtures.py from ftfy "
        + ftfy.__version__
        + " (Python "
        + sys.version.split()[0]
        + ", Unicode "
        + unicodedata.unidata_version
        + "). Do not edit.",
        "//! Data tables for the port of ftfy's `fix_encoding` in `ftfy.rs`.",
        "",
        "/// One single-byte code page ftfy tries (`ftfy.chardata.CHARMAP_ENCODINGS`).",
        "pub(super) struct Charmap {",
        "    /// The Python codec name (ftfy does not try `restore_byte_a0` with `macroman`).",
        "    pub name: &'static str,",
        "    /// What bytes 0x80..=0xFF decode to, in order (128 chars).",
        "    pub high: &'static str,",
        "    /// What byte 0x1A decodes to: U+FFFD in the `sloppy-*` codecs, else U+001A.",
        "    pub sub: char,",
        "    /// Whether this is one of ftfy's `sloppy-*` codecs.",
        "    pub sloppy: bool,",
        "}",
        "",
        "/// The code pages in the order ftfy tries them.",
        "pub(super) const CHARMAPS: &[Charmap] = &[",
    ]
    for enc in chardata.CHARMAP_ENCODINGS:
        full = bytes(range(256)).decode(enc)
        assert len(set(full)) == 256, enc
        for b in range(0x80):
            if b != 0x1A:
                assert full[b] == chr(b), (enc, b)
        lines.append("    Charmap {")
        lines.append(f"        name: {rust_str(enc)},")
        lines.append(f"        high: {rust_str(full[0x80:])},")
        lines.append("        sub: '\\u{%04x}'," % ord(full[0x1A]))
        lines.append(f"        sloppy: {'true' if enc.startswith('sloppy') else 'false'},")
        lines.append("    },")
    lines.append("];")
    lines.append("")

    bad = py_re_to_rust(badness.BADNESS_RE.pattern, verbose=True)
    lines.append("/// `ftfy.badness.BADNESS_RE`, in Rust `regex` syntax.")
    lines.append(f"pub(super) const BADNESS_PATTERN: &str = {rust_str(bad)};")
    lines.append("")

    det = chardata.UTF8_DETECTOR_RE.pattern
    start = det.index("(?<!")
    end = det.index("])", start) + 2
    lookbehind = det[start:end]
    rest = det[:start] + det[end:]
    strict_class = py_re_to_rust(lookbehind[len("(?<!") : -1], verbose=True)
    assert strict_class.startswith("[") and strict_class.endswith("]")
    lines.append(
        "/// The character class of the negative lookbehind that starts "
        "`ftfy.chardata.UTF8_DETECTOR_RE`"
    )
    lines.append("/// (`utf8_continuation_strict`); Rust `regex` has no lookbehind.")
    lines.append(f"pub(super) const UTF8_CONTINUATION_STRICT: &str = {rust_str(strict_class)};")
    lines.append("")
    lines.append("/// `ftfy.chardata.UTF8_DETECTOR_RE` without its leading lookbehind.")
    lines.append(
        f"pub(super) const UTF8_DETECTOR_PATTERN: &str = {rust_str(py_re_to_rust(rest, verbose=True))};"
    )
    lines.append("")
    lines.append("/// `ftfy.chardata.ALTERED_UTF8_RE`, for `regex::bytes`.")
    lines.append(
        f"pub(super) const ALTERED_UTF8_PATTERN: &str = {rust_str(bytes_re_to_rust(chardata.ALTERED_UTF8_RE.pattern))};"
    )
    lines.append("")
    lines.append("/// `ftfy.chardata.LOSSY_UTF8_RE`, for `regex::bytes`.")
    lines.append(
        f"pub(super) const LOSSY_UTF8_PATTERN: &str = {rust_str(bytes_re_to_rust(chardata.LOSSY_UTF8_RE.pattern))};"
    )
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------

SENTENCES = [
    "a photo of a cat",
    "a photo of a dog",
    "A diagram of the solar system.",
    "two people riding bicycles down a busy street in amsterdam",
    "The quick brown fox jumps over the lazy dog!",
    "an oil painting of a lighthouse at sunset, trending on artstation",
    "a close-up photo of a red apple on a wooden table",
    "satellite imagery of farmland",
    "a black and white photo of the Eiffel Tower in 1920",
    "It's a sunny day; they're at the beach and we've got ice cream.",
    "I'm sure he'd say you'll love it, but don't",
    "IT'S LOUD AND THEY'RE SHOUTING, I'LL LEAVE",
    "rock'n'roll isn't dead",
    "x-ray of a human hand",
    "3D render of a low-poly fox, 4k, #art @artist",
    "e-mail: someone@example.com, url: https://example.com/a?b=c&d=e",
    "the year 2024 had 366 days",
    "price: $19.99 (was $25.00) -- 20% off!!!",
    "C++ and C# are languages; so is F*",
    "snake_case, camelCase, kebab-case, SCREAMING_SNAKE",
    "café au lait",
    "naïve résumé with façade",
    "Ångström and Øresund in Århus",
    "São Paulo, Brasil",
    "Straße in München",
    "Tiếng Việt có dấu",
    "Ελληνικά γράμματα ΟΔΟΣ",
    "Съешь же ещё этих мягких французских булок",
    "İstanbul'da ılık bir gün",
    "一只猫坐在窗台上",
    "東京タワーの夜景",
    "고양이가 소파에서 자고 있다",
    "قطة تجلس على الأريكة",
    "חתול יושב על הספה",
    "बिल्ली सोफे पर बैठी है",
    "แมวนั่งอยู่บนโซฟา",
    "ኢትዮጵያ",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "🐱 cat emoji",
    "👍🏽 thumbs up, medium skin tone",
    "family 👨‍👩‍👧‍👦 zwj sequence",
    "rainbow flag 🏳️‍🌈 and pirate 🏴‍☠️",
    "flags 🇯🇵🇺🇸🇩🇪",
    "keycap 1️⃣ and #️⃣",
    "Wales 🏴󠁧󠁢󠁷󠁬󠁳󠁿 tag sequence",
    "woman technologist 👩🏿‍💻",
    "😀😃😄😁😆😅😂🤣",
]

HAND_CASES = [
    # empty and whitespace
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " \t\n\r\x0b\x0c ",
    "\u3000",
    "\u00a0",
    "\u2003\u2009\u200a",
    "\u1680",
    "\u2028\u2029",
    "\x85",
    "\x1c\x1d\x1e\x1f",
    "a\x1cb\x1dc",
    "  leading and trailing  ",
    "many    spaces\t\ttabs\n\nnewlines\r\n\r\nwindows",
    "line one\nline two\nline three",
    "word\u00a0nbsp\u2007figure\u202fnarrow",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "\ufeffbyte order mark",
    "a\ufeffb",
    # contractions and apostrophes
    "'s",
    "'S",
    "'t 're 've 'm 'll 'd",
    "'RE 'VE 'M 'LL 'D 'T",
    "''",
    "'",
    "'''s",
    "o'clock",
    "don't won't can't shan't",
    "y'all'd've",
    "it\u2019s curly",
    "\u2018single\u2019 and \u201cdouble\u201d and \u201flow\u201d \u201a \u201e \u2039 \u203a \u00ab \u00bb",
    "\u02bcokina",
    "it\u02bcs",
    "it'\u017f long s",
    "'\u017f",
    # numbers
    "0",
    "1234567890",
    "3.14159265358979",
    "1,000,000",
    "-42",
    "1e10",
    "\u0663\u0664\u0665 arabic-indic digits",
    "\u0967\u0968\u0969 devanagari digits",
    "\uff11\uff12\uff13 fullwidth digits",
    "\u00bd \u00bc \u00be fractions",
    "x\u00b2 + y\u00b3 = z\u00b9",
    "\u2160\u2161\u2162 \u216b roman numerals",
    "\u2460\u2461\u2462 circled",
    "\U0001d7ce\U0001d7cf math digits",
    "100\u00b0C",
    "\u00b15%",
    # punctuation
    "!!!",
    "...",
    "?!",
    "()[]{}<>",
    "--",
    "@#$%^&*",
    "a/b\\c|d",
    "\u2014em dash\u2013en dash\u2012figure dash",
    "\u2026 ellipsis",
    "\u00bfQu\u00e9? \u00a1Hola!",
    "\u300c\u300d\u3001\u3002",
    "\u00a7 \u00b6 \u2020 \u2021",
    "\u2122 \u00ae \u00a9",
    "\u20ac \u00a3 \u00a5 \u20b9 \u20bf",
    # html entities
    "&amp;",
    "&lt;b&gt;bold&lt;/b&gt;",
    "&quot;quoted&quot;",
    "&#39;apostrophe&#39;",
    "&#x27;hex&#X27;",
    "&#8217; &#x2019; &#8220;x&#8221;",
    "&amp;amp;",
    "&amp;amp;amp;",
    "&amp;amp;amp;amp;",
    "&amp;lt;",
    "&nbsp;non&nbsp;breaking",
    "&copy; 2024 &reg; &trade;",
    "&hellip; &mdash; &ndash;",
    "&eacute;&Eacute;&EACUTE;&eACUTE;",
    "P&EACUTE;REZ",
    "BUNDESSTRA&SZLIG;E",
    "&ntilde; &Ntilde; &NTILDE; &nTILDE;",
    "&NOT; &not &notin &notin; &notit;",
    "&amp &lt &gt &quot",
    "&AMP; &LT; &GT; &QUOT; &COPY;",
    "&ampx &ltfoo &copyright",
    "&Jscr;ohn &HilbertSpace;ancock",
    "&checkmark; &check; &cross;",
    "&frac12; &FRAC12; &sup2; &SUP2;",
    "&#0; &#1; &#8; &#9; &#10; &#13; &#127; &#128; &#129; &#150; &#159; &#160;",
    "&#x0; &#xD800; &#xDFFF; &#x10FFFF; &#x110000; &#xFFFE; &#xFDD0;",
    "&#99999999999999999999;",
    "&#65 &#x41 &#65;&#66;",
    "&#;&#x;&#xg;",
    "&;&&&;",
    "& amp;",
    "&unknownentity;",
    "&abcdefghijklmnopqrstuvwxyzabcdefg;",
    "&aacute &aacutex &Aacute;",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "a < b &amp; c",
    "<b>bold</b> &amp; &eacute;",
    "no tag here &amp;amp;\nnext line <i> &amp;amp;amp;\nthird line &amp;amp;amp;",
    "first &amp;amp;amp; line\nsecond",
    # with a "<", ftfy leaves entities alone: only open_clip's two html.unescape run
    "<b> &amp;amp; </b>",
    "a <tag> &amp;lt; x",
    "x < y &amp;amp;amp; z",
    "<p>&lt;b&gt;&amp;eacute;</p>",
    "1 < 2 &EACUTE; &eacute &amp;nbsp;",
    "&ETH;&THORN;&AELIG;",
    "&macr;\\_(\u00e3\x83\x84)_/&macr;",
    "Broken text&hellip; it&#x2019;s \ufb02ubberi\ufb01c!",
    "&amp;#39;",
    "&#38;amp;",
    "&#38;#38;amp;",
    "&#x26;lt;",
    "&lbrace;&rbrace; &lsqb;&rsqb; &excl;",
    "&NewLine;a&Tab;b",
    "&bne; &nvlt; &fjlig;",
    # ligatures and width
    "\ufb01nance \ufb02oor \ufb00 \ufb03 \ufb04 \ufb05 \ufb06",
    "\u0132ssel \u0133s",
    "\u0149",
    "\u01c4 \u01c5 \u01c6 \u01c7 \u01c8 \u01c9 \u01ca \u01cb \u01cc \u01f1 \u01f2 \u01f3",
    "\u00e6 \u0153 \u00c6 \u0152 stay",
    "\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33",
    "\uff35\uff80\uff70\uff9d",
    "\uff48\uff45\uff4c\uff4c\uff4f\uff01",
    "\uff76\uff80\uff76\uff85 \uff8a\uff9f\uff9d",
    "\uffa1\uffa4 halfwidth hangul",
    "\uffe0\uffe1\uffe5\uffe6",
    "\uffe8\uffe9\uffee",
    "\uff5f\uff60",
    # control characters and terminal escapes
    "a\x00b",
    "\x07bell",
    "\x1b[31mred\x1b[0m",
    "\x1b[1;32;40mbold green\x1b[m plain",
    "\x1b]0;title\x07",
    "\x1b",
    "a\x7fb",
    "\x0b\x0c",
    "\u206a\u206f deprecated",
    "\ufff9\ufffa\ufffb annotation \ufffc object",
    "\ufffd replacement",
    "\u200e\u200f marks \u202a\u202e embedding",
    "\U000e0041 tag",
    "\U0001d173 music",
    "\x80\x81\x8d\x8f\x90\x9d\x9f",
    "\x93smart quotes\x94",
    "caf\x82",
    # case
    "\u03a3\u0391\u03a3",
    "\u039f\u0394\u039f\u03a3 \u039f\u0394\u039f\u03a3.",
    "\u1f48\u0394\u03a5\u03a3\u03a3\u0395\u038e\u03a3",
    "\u03a3",
    "A\u03a3",
    "A\u03a3B",
    "A\u03a3\u0301",
    "\u212a kelvin \u212b angstrom \u2126 ohm",
    "\u0130 dotted I",
    "\u0130stanbul",
    "\u1e9e capital sharp s",
    "\u01c5 titlecase dz",
    "\u1f88 \u1ffc greek titlecase",
    "\u24b6\u24b7 circled letters",
    "\U00010400 deseret",
    "\u2c00 glagolitic",
    "\uab70 cherokee small",
    # accents composed and decomposed
    "caf\u00e9",
    "cafe\u0301",
    "e\u0301\u0302\u0303",
    "a\u0308o\u0308u\u0308",
    "\u1e9b\u0323",
    "q\u0307\u0323",
    "\u0041\u030a \u00c5 \u212b",
    "\u1100\u1161\u11a8 hangul jamo",
    "\uac00",
    "\u0915\u093c \u0958",
    "\u2126\u03a9",
    "\u00f1 n\u0303 N\u0303",
    "o\u0328\u0304",
    "\u0ddd",
    # U+0345 COMBINING GREEK YPOGEGRAMMENI: matched by no class of open_clip's
    # case-insensitive split regex, so it disappears
    "a\u0345b",
    "\u0345",
    "!\u0345!",
    "1\u0345 2",
    "\u1fb3 \u03b1\u0345 \u1fbc \u0391\u0345",
    # special tokens
    "<start_of_text>",
    "<end_of_text>",
    "<start_of_text>a photo of a cat<end_of_text>",
    "a photo <end_of_text> of a cat",
    "a<start_of_text>b",
    "1<end_of_text>2",
    "<START_OF_TEXT>",
    "<End_Of_Text>",
    "<|startoftext|> <|endoftext|>",
    "!<start_of_text>",
    "x><end_of_text>",
    "'<end_of_text>",
    "<start_of_text",
    "start_of_text>",
    "<start_of_text><end_of_text><start_of_text>",
    "<<start_of_text>>",
    "<\u017ftart_of_text>",
    "< start_of_text >",
    "&lt;start_of_text&gt;",
    "&lt;end_of_text&gt;x",
    "\uff1cstart_of_text\uff1e",
    "<end_of_text>" * 100,
    # mojibake (ftfy's own examples and common cases)
    "\u00e2\u0153\u201d No problems",
    "s\u00c3\u00b3",
    "voil\u00c3 le travail",
    "\u00c3 la mode",
    "sch\u00c3\u00b6n",
    "\u00e2\u20ac\u0153quoted\u00e2\u20ac\ufffd",
    "\u00c3\u0192\u00c2\u00a9",
    "\u00d0\u0178\u00d1\u20ac\u00d0\u00b8\u00d0\u00b2\u00d0\u00b5\u00d1\u201a",
    "\u0420\u045f\u0421\u0402\u0420\u0451\u0420\u0406\u0420\u00b5\u0421\u201a",
    "\u00c3\u00a9t\u00c3\u00a9 \u00c3\u00a0 Paris",
    "The Mona Lisa doesn\u00e2\u20ac\u2122t have eyebrows.",
    "\u00e2\u20ac\u0153mismatched quotes\u2026\u201d",
    "l\u00e2\u20ac\u2122humanit\u00c3\u00a9",
    "Ã©",
    "Ã",
    "Ã ",
    "Â ",
    "hello Â world",
    "100Â°C",
    "\u00c2\u00a320",
    "\u00c3\u00a2\u00e2\u201a\u00ac\u00e2\u201e\u00a2",
    "\u00f0\u0178\u02dc\u20ac emoji mojibake",
    "\u00e6\u2014\u00a5\u00e6\u0153\u00ac\u00e8\u00aa\u017e",
    "\u00ed\u00a0\u00bd\u00ed\u00b8\u20ac cesu",
    "\u00c0\u20ac java null",
    "\u00d9\u2026\u00d8\u00b1\u00d8\u00ad\u00d8\u00a8\u00d8\u00a7",
    "\u0432\u0402\u045a",
    "\u00ce\u00b2\u00e2\u201a\u00ac",
    "\u00e2\u20ac\u201d dash",
    "\u00e2\u20ac\u00a6",
    "\u00e2\u20ac",
    "P\u00c3\u00bablico \u00c3\u00a9 \u00c3\u00a0s vezes",
    "\u00c3\u00a0quele \u00c3 s",
    "\u0102\u0160",
    "\u221a\u00a9",
    "\u201a\u00c4\u00f4",
    "\u00e2\u0080\u0099",
    "\u00c2\u0080",
    "\u00c3\x83\u00c2\xa9",
    "\u00c3\u0081rvore",
    "\u00c3\u0192\u00c6\u2019\u00c3\u2020\u00e2\u20ac\u2122",
    "\u00ef\u00bb\u00bfBOM mojibake",
    "\u00e2\u20ac\u00a2 bullet",
    "\u00c2\u00bfQu\u00c3\u00a9?",
    "\u00e2\x80\x94",
    "\u00ef\u00bc\u00a1",
]


def mojibake_cases(rng: random.Random) -> list[str]:
    """UTF-8 text decoded in the wrong code page, as ftfy's fix_encoding would see it."""
    sources = [s for s in SENTENCES if any(ord(c) > 127 for c in s)] + [
        "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
        "\u201cquoted\u201d \u2014 \u2018single\u2019 \u2026",
        "\u00a0\u00e0 la carte\u00a0",
        "na\u00efve co\u00f6perate",
        "\u00bf\u00a1\u00ab\u00bb\u00a7\u00b6\u00b0\u00b1",
        "Gr\u00fc\u00dfe aus K\u00f6ln",
        "\u00e9l\u00e8ve \u00e0 l\u2019\u00e9cole",
        "\u20ac100 \u00a3200 \u00a5300",
        "\u2122\u00ae\u00a9",
        "\u0141\u00f3d\u017a \u017c\u00f3\u0142w",
        "\u010cesk\u00fd Krumlov",
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
        "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5",
    ]
    encodings = [
        "latin-1",
        "windows-1252",
        "sloppy-windows-1252",
        "sloppy-windows-1251",
        "sloppy-windows-1250",
        "sloppy-windows-1253",
        "sloppy-windows-1254",
        "sloppy-windows-1257",
        "iso-8859-2",
        "macroman",
        "cp437",
    ]
    out = []
    for src in sources:
        for enc in rng.sample(encodings, 4):
            raw = src.encode("utf-8")
            text = raw.decode(enc, errors="replace")
            r = rng.random()
            if r < 0.15:
                text = text.replace("\u00a0", " ")
            elif r < 0.25:
                text = "clean prefix " + text + " and \u00e9t\u00e9 suffix"
            elif r < 0.35:
                # double mojibake
                text = text.encode("utf-8").decode(enc, errors="replace")
            elif r < 0.45:
                cut = rng.randrange(1, max(2, len(text)))
                text = text[:cut]
            out.append(text)
    return out


def random_pools() -> list[str]:
    def rng_chars(a: int, b: int) -> str:
        return "".join(
            chr(i) for i in range(a, b + 1) if unicodedata.category(chr(i)) not in ("Cn", "Cs")
        )

    cp1252 = bytes(range(0x80, 0xA0)).decode("windows-1252", errors="ignore")
    entity_bits = [
        "&", "&amp;", "&lt;", "&gt;", "&#", "&#x", ";", "amp", "lt", "gt", "quot", "nbsp",
        "&nbsp", "&copy", "&eacute;", "&EACUTE;", "&#39;", "&#x2019;", "&#8212;", "&#x1F600;",
        "&#0;", "&#128;", "&not", "&notin;", "&AMP;", "&frac12", "&hellip;", "&#9;", "&#10;",
    ]
    return [
        "abcdefghijklmnopqrstuvwxyz" * 3 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "     \t\n\r",
        rng_chars(0xA0, 0xFF),
        cp1252 + "".join(chr(i) for i in range(0x80, 0xA0)),
        rng_chars(0x300, 0x36F),
        rng_chars(0x370, 0x3FF) + rng_chars(0x400, 0x4FF),
        rng_chars(0x590, 0x5FF) + rng_chars(0x600, 0x6FF),
        rng_chars(0x900, 0x97F) + rng_chars(0xE00, 0xE7F),
        rng_chars(0x3040, 0x30FF) + rng_chars(0x4E00, 0x4FFF),
        rng_chars(0xAC00, 0xAD00),
        rng_chars(0xFF00, 0xFFEF),
        rng_chars(0x2000, 0x206F) + "\u3000\ufeff\ufffd\ufffc",
        rng_chars(0x1F300, 0x1F64F) + rng_chars(0x1F900, 0x1F9FF),
        "\u200d\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff\u20e3",
        "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06\u0132\u0133\u0149\u01c4\u01c5\u01c6"
        "\u01c7\u01c8\u01c9\u01ca\u01cb\u01cc\u01f1\u01f2\u01f3",
        "\u02bc\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f",
        "".join(chr(i) for i in list(range(0, 0x20)) + [0x7F]),
        "\x1b[",
        "\u00c3\u00c2\u00e2\u00c5\u00ce\u00d0\u00d9\u00d8\u00e0\u00ed\u00f0\u20ac\u0153\u017e"
        "\u0160\u2122\u00a9\u00ae\u00b0\u00b7\u00bb\u00a0\u00ad",
        "\u03a3\u03c3\u03c2\u212a\u212b\u0130\u0131\u017f\u1e9e\u00df",
        "<start_of_text><end_of_text>",
        rng_chars(0x10000, 0x2FFFF),
    ] + entity_bits


def random_cases(rng: random.Random, count: int) -> list[str]:
    pools = random_pools()
    all_assigned = [
        i
        for i in range(0x110000)
        if unicodedata.category(chr(i)) not in ("Cn", "Cs")
    ]
    out = []
    for n in range(count):
        length = rng.choice([1, 2, 3, 5, 8, 12, 20, 30, 50, 80])
        if n % 50 == 0:
            length = rng.randrange(150, 400)
        # Each string mixes a few pools, weighted to look a bit like text.
        chosen = rng.sample(pools, rng.randrange(1, 5))
        parts = []
        for _ in range(length):
            r = rng.random()
            if r < 0.03:
                parts.append(chr(rng.choice(all_assigned)))
            elif r < 0.15:
                parts.append(" ")
            else:
                pool = rng.choice(chosen)
                if pool.startswith("&") or pool in (";", "amp", "lt", "gt", "quot", "nbsp"):
                    parts.append(pool)
                elif pool == "<start_of_text><end_of_text>":
                    parts.append(rng.choice(["<start_of_text>", "<end_of_text>"]))
                elif pool == "\x1b[":
                    parts.append("\x1b[" + str(rng.randrange(0, 50)) + rng.choice("mKAB;"))
                else:
                    parts.append(rng.choice(pool))
        out.append("".join(parts))
    return out


def long_cases() -> list[str]:
    return [
        " ".join(SENTENCES),
        "a " * 200,
        "word " * 80,
        "supercalifragilisticexpialidocious" * 12,
        "\U0001f431" * 120,
        "\u732b" * 150,
        "1" * 120,
        "!" * 300,
        "x" * 1000,
        ("The quick brown fox jumps over the lazy dog. " * 10).strip(),
        "a" + " b" * 74,
        "a" + " b" * 75,
        "a" + " b" * 76,
        " ".join(str(i) for i in range(100)),
        "\u00e9" * 200,
        "\n".join(SENTENCES[:20]),
    ]


def entity_cases() -> list[str]:
    """Every HTML5 entity name (with and without `;`), ftfy's all-caps spellings, and
    near misses (all-caps names Python already decodes, names with a `;` removed or a
    suffix added), a dozen per string."""
    names = sorted(html.entities.html5)
    items = ["&" + n for n in names]
    items += ["&" + n.upper() for n in names if n.endswith(";") and n == n.lower()]
    items += ["&" + n[:-1] + "x;" for n in names[::7] if n.endswith(";")]
    items += ["&" + n.rstrip(";") for n in names[::5]]
    ftfy_only = sorted(k for k in chardata.HTML_ENTITIES if k[1:] not in html.entities.html5)
    items += ftfy_only
    out = []
    for i in range(0, len(items), 12):
        out.append(" ".join(items[i : i + 12]))
    # The same references glued together (no spaces) and double-escaped.
    for i in range(0, len(names), 97):
        chunk = "".join("&" + n for n in names[i : i + 8])
        out.append(chunk)
        out.append(chunk.replace("&", "&amp;"))
    return out


def assigned_after_unicode_14(c: str) -> bool:
    """Unassigned in Python 3.11's Unicode 14 but assigned in the `regex` module's newer
    tables: how such a char is split, cased or normalized depends on library versions."""
    return unicodedata.category(c) == "Cn" and not REGEX_UNASSIGNED.match(c)


def build_corpus() -> list[str]:
    rng = random.Random(SEED)
    texts: list[str] = []
    texts += SENTENCES
    texts += HAND_CASES
    texts += long_cases()
    texts += mojibake_cases(rng)
    # Upper-cased / title-cased / space-joined variants of the sentences.
    texts += [s.upper() for s in SENTENCES]
    texts += [s.title() for s in SENTENCES]
    texts += [unicodedata.normalize("NFD", s) for s in SENTENCES]
    texts += [unicodedata.normalize("NFKD", s) for s in SENTENCES]
    texts += [html.escape(s) for s in SENTENCES[:20]]
    texts += [html.escape(html.escape(s)) for s in SENTENCES[:20]]
    texts += entity_cases()
    texts += random_cases(rng, 900)
    seen = set()
    unique = []
    for t in texts:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in t)
        if any(assigned_after_unicode_14(c) for c in t):
            continue
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


def strip_padding(row: list[int]) -> list[int]:
    end = len(row)
    while end > 0 and row[end - 1] == 0:
        end -= 1
    return row[:end]


def corpus_json() -> str:
    tok = oc_tok._tokenizer
    assert tok.sot_token_id == 49406 and tok.eot_token_id == 49407 and tok.vocab_size == 49408
    texts = build_corpus()
    rows = open_clip.tokenize(texts, context_length=CONTEXT_LENGTH).tolist()
    cases = []
    for text, row in zip(texts, rows):
        ids = strip_padding(row)
        assert ids[0] == tok.sot_token_id and ids[-1] == tok.eot_token_id
        cases.append({"text": text, "clean": tok.clean_fn(text), "ids": ids})

    rng = random.Random(SEED + 1)
    length_texts = [""] + rng.sample(texts, 40) + long_cases()[:4]
    length_cases = []
    for cl in (1, 2, 3, 5, 16, 100):
        rows = open_clip.tokenize(length_texts, context_length=cl).tolist()
        for text, row in zip(length_texts, rows):
            assert len(row) == cl
            length_cases.append({"text": text, "context_length": cl, "ids": strip_padding(row)})

    header = {
        "generator": "tools/gen_tokenizer_fixtures.py",
        "reference": "open_clip_torch %s SimpleTokenizer (clean='lower'), ftfy %s, regex %s"
        % (open_clip.__version__, ftfy.__version__, regex.__version__),
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "seed": SEED,
        "context_length": CONTEXT_LENGTH,
        "vocab_size": tok.vocab_size,
        "sot_token": tok.sot_token_id,
        "eot_token": tok.eot_token_id,
        "ids_note": "token ids up to and including the last end-of-text token; the rest "
        "of the context_length positions are 0",
        "count": len(cases),
    }
    parts = ["{"]
    for k, v in header.items():
        parts.append(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    parts.append('"cases": [')
    parts.append(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
    parts.append("],")
    parts.append('"length_cases": [')
    parts.append(",\n".join(json.dumps(c, ensure_ascii=False) for c in length_cases))
    parts.append("]")
    parts.append("}")
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = ap.parse_args()
    outputs = {
        MERGES_PATH: merges_text(),
        TABLES_PATH: ftfy_tables_rs(),
        CORPUS_PATH: corpus_json(),
    }
    stale = []
    for path, content in outputs.items():
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8", newline="") as f:
                old = f.read()
        if old == content:
            print(f"up to date: {os.path.relpath(path, ROOT)}")
            continue
        if args.check:
            stale.append(path)
            print(f"STALE: {os.path.relpath(path, ROOT)}")
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(content)
        print(f"wrote {os.path.relpath(path, ROOT)} ({len(content.encode('utf-8'))} bytes)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
