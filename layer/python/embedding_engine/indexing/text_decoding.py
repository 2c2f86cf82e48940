"""Bytes to text (a BOM, strict UTF-8, UTF-16 without a BOM, or charset-normalizer's guess), and how
much of a text is unprintable: the test that tells text from binary read as text."""

from __future__ import annotations

import codecs
import unicodedata
from collections import Counter

from charset_normalizer import from_bytes

_BYTE_ORDER_MARKS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# How much more "chaos" than the detector's favourite a Windows-1252 reading may show and still win.
_CP1252_TOLERANCE = 0.1
# Above this share of unprintable characters, a text is not text. Measured: real text in 16
# languages, correctly decoded, 0.000 (0.006 when a 300-byte cut splits a character); random bytes
# 0.56-0.57; a PNG 0.60, gzip 0.56, a PDF read as text 0.55, a .mo catalogue 0.15; UTF-16 without a
# BOM read as UTF-8 0.20-0.62; a log coloured with ANSI escapes about 0.03.
MAX_UNPRINTABLE_RATIO = 0.10
# A UTF-16 reading of BOM-less bytes is taken only when it is this clean: real text read as UTF-16
# measured 0.000, random bytes read as UTF-16 0.14-0.17 (private use, surrogates, unassigned).
_MAX_UTF16_UNPRINTABLE_RATIO = 0.02
# Control characters that text holds: tab, line feed, vertical tab (Word's line break), form feed, CR.
_TEXT_CONTROLS = frozenset("\t\n\v\f\r")
# Controls, unassigned code points, surrogates, private use; U+FFFD (a byte that did not decode) too.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cn", "Cs", "Co"})
# Characters (or UTF-16 code units) looked at to choose an encoding; the whole text is not needed.
_SAMPLE = 65_536
_UTF16 = ["utf_16_le", "utf_16_be"]
# Without a high-byte signal, a UTF-16 reading needs this share of its letters in one script: real CJK
# text is nearly all CJK; 7-bit noise read as UTF-16 scatters over scripts (about 0.6 CJK).
_MIN_ONE_SCRIPT_SHARE = 0.8
# One byte of each UTF-16 pair is the high byte: one value (0x00 Latin, 0x04 Cyrillic, 0x09
# Devanagari...) makes most of them. The side whose commonest value is this much more common wins.
_HIGH_BYTE_MARGIN = 0.2


def decode_text(data: bytes) -> tuple[str, str]:
    """Bytes to text and the encoding used: a BOM wins (utf-8-sig, utf-16, utf-32), then strict UTF-8,
    then charset-normalizer's guess (see `_guess_encoding`), then UTF-8 with replacement characters:
    bad bytes never raise. A reading that is not text (see `unprintable_ratio`) gives way to a clean
    UTF-16 reading without a BOM: UTF-16 whose bytes are all below 0x80 is valid UTF-8 too."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return data.decode(encoding, errors="replace"), encoding
    text, encoding = _first_reading(data)
    if unprintable_ratio(text[:_SAMPLE]) > MAX_UNPRINTABLE_RATIO:
        return _utf16_without_bom(data) or (text, encoding)
    return text, encoding


def unprintable_ratio(text: str) -> float:
    """The share of `text` that no reader sees as text: control characters other than tab, line
    feed, vertical tab, form feed and CR; unassigned code points, surrogates, private use; and
    U+FFFD, the replacement for bytes that did not decode."""
    if not text:
        return 0.0
    unprintable = sum(count for char, count in Counter(text).items() if _is_unprintable(char))
    return unprintable / len(text)


def _is_unprintable(char: str) -> bool:
    if char in _TEXT_CONTROLS:
        return False
    return char == "\ufffd" or unicodedata.category(char) in _UNPRINTABLE_CATEGORIES


def _first_reading(data: bytes) -> tuple[str, str]:
    """Strict UTF-8, else charset-normalizer's guess, else UTF-8 with replacement characters."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    guess = _guess_encoding(data)
    if guess is None:
        return data.decode("utf-8", errors="replace"), "utf-8"
    return data.decode(guess, errors="replace"), codecs.lookup(guess).name


def _guess_encoding(data: bytes) -> str | None:
    """charset-normalizer's best guess, but Windows-1252 when it is about as plausible: the detector
    confuses the Latin code pages (short or French cp1252 text comes back as UTF-16, cp1250, cp1257)."""
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    for match in matches:
        if "cp1252" in match.could_be_from_charset and match.chaos <= best.chaos + _CP1252_TOLERANCE:
            return "cp1252"
    return best.encoding


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """The UTF-16 reading of `data`, when one is clean (`_MAX_UTF16_UNPRINTABLE_RATIO`) and its byte
    order stands out: its high bytes (odd bytes for little-endian) are much more alike than the other
    order's, or, where high bytes vary as much as low ones (CJK), see `_one_script_reading`."""
    sample = data[: min(len(data), 2 * _SAMPLE) // 2 * 2]
    little, big = _commonest_share(sample[1::2]), _commonest_share(sample[0::2])
    if abs(little - big) < _HIGH_BYTE_MARGIN:
        encoding = _one_script_reading(sample)
    else:
        encoding = "utf-16-le" if little > big else "utf-16-be"
        if unprintable_ratio(sample.decode(encoding, errors="replace")) > _MAX_UTF16_UNPRINTABLE_RATIO:
            return None
    if encoding is None:
        return None
    return data[: len(data) // 2 * 2].decode(encoding, errors="replace"), encoding


def _one_script_reading(sample: bytes) -> str | None:
    """The UTF-16 byte order whose reading is clean, coherent to charset-normalizer's mess detector,
    and has the largest share of its letters in one script, at least `_MIN_ONE_SCRIPT_SHARE`."""
    coherent = {codecs.lookup(match.encoding).name for match in from_bytes(sample, cp_isolation=_UTF16)}
    chosen, chosen_share = None, _MIN_ONE_SCRIPT_SHARE
    for encoding in ("utf-16-le", "utf-16-be"):
        text = sample.decode(encoding, errors="replace")
        if encoding not in coherent or unprintable_ratio(text) > _MAX_UTF16_UNPRINTABLE_RATIO:
            continue
        share = _one_script_share(text)
        if share > chosen_share or (chosen is None and share == chosen_share):
            chosen, chosen_share = encoding, share
    return chosen


def _commonest_share(values: bytes) -> float:
    """The share of `values` taken by its commonest byte."""
    return max(Counter(values).values()) / len(values) if values else 0.0


def _one_script_share(text: str) -> float:
    """The share of the letters of `text` in its commonest script (the first word of a character's
    Unicode name: LATIN, CYRILLIC, CJK, HANGUL...)."""
    scripts = Counter(unicodedata.name(char, "?").split(" ", 1)[0] for char in text if char.isalpha())
    return max(scripts.values()) / scripts.total() if scripts else 0.0
