"""Document bytes to visible text: plain text, Markdown, HTML and PDF.

Errors name the object's key and type, never its text: document text must not reach the logs.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

from charset_normalizer import from_bytes
from pypdf import PdfReader
from pypdf.errors import DependencyError, DeprecationError, PyPdfError

from embedding_engine.errors import CorruptDocumentError, UnsupportedDocumentError

PLAIN_TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"

_KIND_BY_EXTENSION = {
    ".txt": PLAIN_TEXT,
    ".text": PLAIN_TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
}
_KIND_BY_CONTENT_TYPE = {
    PLAIN_TEXT: PLAIN_TEXT,
    MARKDOWN: MARKDOWN,
    "text/x-markdown": MARKDOWN,
    HTML: HTML,
    "application/xhtml+xml": HTML,
    PDF: PDF,
    "application/x-pdf": PDF,
}
# Content types that say nothing about the bytes: the key's extension decides instead.
_GENERIC_CONTENT_TYPES = frozenset({"", "binary/octet-stream", "application/octet-stream"})
SUPPORTED_EXTENSIONS = frozenset(_KIND_BY_EXTENSION)

_BYTE_ORDER_MARKS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# How much more "chaos" than the detector's favourite a Windows-1252 reading may show and still win.
_CP1252_TOLERANCE = 0.1
# What pypdf raises on broken bytes: its own errors, plus the built-ins that fuzzing truncated and
# garbled PDFs showed escaping from its parser, filters and decryption.
_PDF_READ_ERRORS = (
    PyPdfError,
    DependencyError,
    DeprecationError,
    AssertionError,
    AttributeError,
    KeyError,
    NotImplementedError,
    TypeError,
    ValueError,
)
_MAX_TITLE_CHARS = 300
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")
_WHITESPACE_RUNS = re.compile(r"\s+")


@dataclass(frozen=True)
class ExtractedDocument:
    text: str  # the visible text, whitespace tidied, a blank line between paragraphs
    content_type: str  # the kind it was read as: one of the four kinds above
    metadata: dict[str, Any]  # small JSON-able facts: encoding, title, pages


def detect_kind(key: str, content_type: str | None) -> str:
    """The kind to read an object as, from its S3 Content-Type when specific, else its key's extension
    (S3 often says binary/octet-stream); raises UnsupportedDocumentError naming the key and type."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    extension = PurePosixPath(key).suffix.lower()
    if media_type in _GENERIC_CONTENT_TYPES:
        kind = _KIND_BY_EXTENSION.get(extension)
    else:
        kind = _KIND_BY_CONTENT_TYPE.get(media_type)
    if kind is None:
        raise UnsupportedDocumentError(
            f"Unsupported document {key!r}: extension {extension or '(none)'!r}, "
            f"content type {content_type or '(none)'!r}; supported extensions are "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))} (or a matching content type)"
        )
    return kind


def decode_text(data: bytes) -> tuple[str, str]:
    """Bytes to text and the encoding used: a BOM wins (utf-8-sig, utf-16, utf-32), then strict UTF-8,
    then charset-normalizer's guess (see `_guess_encoding`), then UTF-8 with replacement characters:
    bad bytes never raise."""
    for mark, encoding in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return data.decode(encoding, errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    guess = _guess_encoding(data)
    if guess is None:
        return data.decode("utf-8", errors="replace"), "utf-8"
    return data.decode(guess, errors="replace"), guess


def extract_text(data: bytes, *, key: str, content_type: str | None = None) -> ExtractedDocument:
    """Dispatch on detect_kind; raises UnsupportedDocumentError or CorruptDocumentError."""
    kind = detect_kind(key, content_type)
    if kind == PDF:
        return _read_pdf(data, key)
    text, encoding = decode_text(data)
    if kind == HTML:
        return _read_html(text, encoding, key)
    return ExtractedDocument(_tidy(text), kind, {"encoding": encoding})


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


def _tidy(text: str) -> str:
    """Newlines normalised, NULs dropped, trailing spaces cut, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINE_RUNS.sub("\n\n", lines).strip("\n")


def _title(value: object) -> str | None:
    """A usable title: a non-blank string, spaces collapsed, not too long."""
    if not isinstance(value, str):
        return None
    title = _WHITESPACE_RUNS.sub(" ", value.replace("\x00", "")).strip()
    return title[:_MAX_TITLE_CHARS] or None


def _read_pdf(data: bytes, key: str) -> ExtractedDocument:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptDocumentError(f"PDF {key!r} is encrypted and needs a password")
        pages = [page.extract_text() for page in reader.pages]
        title = _title(reader.metadata.title) if reader.metadata else None
    except _PDF_READ_ERRORS as error:
        # `from None`: pypdf's messages can quote bytes of the document.
        raise CorruptDocumentError(f"PDF {key!r} cannot be read ({type(error).__name__})") from None
    page_texts = ("\n".join(" ".join(line.split()) for line in page.splitlines()) for page in pages)
    metadata: dict[str, Any] = {"pages": len(pages)}
    if title:
        metadata["title"] = title
    return ExtractedDocument(_tidy("\n\n".join(page_texts)), PDF, metadata)


def _read_html(markup: str, encoding: str, key: str) -> ExtractedDocument:
    parser = _VisibleTextParser()
    try:
        parser.feed(markup)
        parser.close()
    except AssertionError:  # Python 3.11's html.parser on a malformed "<![" section
        raise CorruptDocumentError(f"HTML {key!r} cannot be parsed") from None
    metadata: dict[str, Any] = {"encoding": encoding}
    title = _title("".join(parser.title_parts))
    if title:
        metadata["title"] = title
    return ExtractedDocument(_tidy(parser.text()), HTML, metadata)


_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_PARAGRAPH_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "body", "caption", "details", "dialog", "div", "dl"}
    | {"fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"header", "hgroup", "hr", "html", "main", "nav", "ol", "p", "pre", "section", "summary"}
    | {"table", "tbody", "tfoot", "thead", "ul"}
)
_LINE_TAGS = frozenset({"br", "dd", "dt", "li", "option", "tr"})
_CELL_TAGS = frozenset({"td", "th"})


class _VisibleTextParser(HTMLParser):
    """Collects the text a reader sees; blocks become paragraph or line breaks, <title> is kept apart."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self._parts: list[str] = []
        self._hidden_depth = 0
        self._in_title = False
        self._pre_depth = 0

    def text(self) -> str:
        return "".join(self._parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self._hidden_depth:  # not an <svg>'s <title>
            self._in_title = True
        elif tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag == "pre":
            self._pre_depth += 1
        self._break_for(tag, starting=True)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _HIDDEN_TAGS and self._hidden_depth:
            self._hidden_depth -= 1
        elif tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        self._break_for(tag, starting=False)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._hidden_depth:
            self._append(data if self._pre_depth else _WHITESPACE_RUNS.sub(" ", data))

    def _break_for(self, tag: str, *, starting: bool) -> None:
        """A blank line around a block; a new line before a line-like tag; a space between cells."""
        if tag in _PARAGRAPH_TAGS:
            self._parts.append("\n\n")
        elif tag in _LINE_TAGS and starting:
            self._parts.append("\n")
        elif tag in _CELL_TAGS:
            self._append(" ")

    def _append(self, text: str) -> None:
        """Adds text without a space at a line's start or a second space in a row."""
        previous = self._parts[-1][-1:] if self._parts else "\n"
        if previous in ("\n", " ") and not self._pre_depth:
            text = text.lstrip(" ")
        if text:
            self._parts.append(text)
