"""Document bytes to visible text: plain text, Markdown, HTML and PDF, within a character budget, and
refused when the result is not text (binary bytes named .txt, say).

Errors name the object's key and type, never its text: document text must not reach the logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

from embedding_engine.deadline import Deadline
from embedding_engine.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    NotTextDocumentError,
    UnsupportedDocumentError,
)
from embedding_engine.indexing.pdf_text import read_pdf
from embedding_engine.indexing.text_decoding import MAX_UNPRINTABLE_RATIO, decode_text, unprintable_ratio
from embedding_engine.settings import Settings

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
CONTENT_TYPES = frozenset(_KIND_BY_EXTENSION.values())  # what a document is stored as
# MAX_DOCUMENT_CHARS's default (the Settings field's), for callers that pass no budget.
DEFAULT_MAX_CHARS = Settings.max_document_chars

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


def extract_text(
    data: bytes,
    *,
    key: str,
    content_type: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    deadline: Deadline | None = None,
) -> ExtractedDocument:
    """Dispatch on detect_kind. Raises UnsupportedDocumentError, CorruptDocumentError,
    DocumentTooLargeError (over `max_chars`: PDF pages stop being read there), NotTextDocumentError,
    or DeadlineExceededError (checked between PDF pages)."""
    kind = detect_kind(key, content_type)
    if kind == PDF:
        return _read_pdf(data, key, max_chars, deadline or Deadline.never())
    text, encoding = decode_text(data)
    if kind == HTML:
        return _read_html(text, encoding, key, max_chars)
    _check_size(text, key, max_chars)
    _check_text(text, key)
    return ExtractedDocument(_tidy(text), kind, {"encoding": encoding})


def _check_size(text: str, key: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise DocumentTooLargeError(
            f"{key!r} holds {len(text)} characters, over MAX_DOCUMENT_CHARS={max_chars}; not indexed."
        )


def _check_text(text: str, key: str) -> None:
    """Refuses text that is mostly unprintable: binary bytes read as text make garbage chunks."""
    ratio = unprintable_ratio(text)
    if ratio > MAX_UNPRINTABLE_RATIO:
        raise NotTextDocumentError(
            f"{key!r} is not text: {ratio:.0%} of its characters are unprintable (control, "
            f"unassigned, private-use or undecodable), over {MAX_UNPRINTABLE_RATIO:.0%}."
        )


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


def _read_pdf(data: bytes, key: str, max_chars: int, deadline: Deadline) -> ExtractedDocument:
    pdf = read_pdf(data, key=key, max_chars=max_chars, deadline=deadline)
    page_texts = ["\n".join(" ".join(line.split()) for line in page.splitlines()) for page in pdf.pages]
    text = "\n\n".join(page_texts)
    _check_text(text, key)
    metadata: dict[str, Any] = {"pages": len(pdf.pages)}
    title = _title(pdf.title)
    if title:
        metadata["title"] = title
    return ExtractedDocument(_tidy(text), PDF, metadata)


def _read_html(markup: str, encoding: str, key: str, max_chars: int) -> ExtractedDocument:
    parser = _VisibleTextParser()
    try:
        parser.feed(markup)
        parser.close()
    except AssertionError:  # Python 3.11's html.parser on a malformed "<![" section
        raise CorruptDocumentError(f"HTML {key!r} cannot be parsed") from None
    text = parser.text()
    _check_size(text, key, max_chars)  # the visible text: markup can be many times longer
    _check_text(text, key)
    metadata: dict[str, Any] = {"encoding": encoding}
    title = _title("".join(parser.title_parts))
    if title:
        metadata["title"] = title
    return ExtractedDocument(_tidy(text), HTML, metadata)


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
