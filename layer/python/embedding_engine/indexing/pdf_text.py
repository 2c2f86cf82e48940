"""PDF pages to text within bounds: no stream inflates past a cap, and pages are read only while the
document's budgets (characters, inflated page content) and the invocation's deadline allow.

Errors name the object's key and the error's type, never pypdf's message (it can quote the bytes).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from pypdf import PageObject, PdfReader, apply_configuration, get_configuration
from pypdf.errors import DependencyError, DeprecationError, LimitReachedError, PyPdfError
from pypdf.generic import ArrayObject, StreamObject

from embedding_engine.deadline import Deadline
from embedding_engine.errors import CorruptDocumentError, DeadlineExceededError, DocumentTooLargeError

# No stream inflates past this many bytes per character of the budget, nor past the floor: pages of
# text measure a few kB (pdfTeX: 9-19 kB), and a page of text-showing operators inflated to its cap
# (4 MB by default) is about a second of extraction. pypdf's own default is 75 MB.
STREAM_BYTES_PER_CHAR = 2
MIN_STREAM_BYTES = 4 * 1024 * 1024
# Inflated page content a whole document may hold per character of the budget (16 MB by default):
# pdfTeX documents measured 2.6-3.9 bytes of page content per extracted character.
CONTENT_BYTES_PER_CHAR = 8
# pypdf's decompression limits (pypdf.Configuration), each set to the stream cap.
_OUTPUT_LIMITS = (
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
    "array_based_stream_maximum_output_length",
)
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


@dataclass(frozen=True)
class PdfText:
    pages: list[str]  # each page's text as pypdf extracts it
    title: Any  # the document information's /Title, unchecked


def read_pdf(data: bytes, *, key: str, max_chars: int, deadline: Deadline) -> PdfText:
    """The text of every page. Raises `DocumentTooLargeError` past a bound (pypdf's decompression
    limits included), `DeadlineExceededError` when the deadline passes between pages, and
    `CorruptDocumentError` when pypdf cannot read the bytes."""
    stream_cap = max(MIN_STREAM_BYTES, STREAM_BYTES_PER_CHAR * max_chars)
    try:
        limits = get_configuration().with_overwrites(**dict.fromkeys(_OUTPUT_LIMITS, stream_cap))
        with apply_configuration(limits):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise CorruptDocumentError(f"PDF {key!r} is encrypted and needs a password")
            pages = _read_pages(reader, key=key, max_chars=max_chars, deadline=deadline)
            title = reader.metadata.title if reader.metadata else None
    except LimitReachedError:
        raise DocumentTooLargeError(
            f"PDF {key!r} is beyond the reader's limits (LimitReachedError: a stream inflates past "
            f"{stream_cap} bytes, or a structure is too large or cyclic); not indexed."
        ) from None
    except _PDF_READ_ERRORS as error:
        # `from None`: pypdf's messages can quote bytes of the document.
        raise CorruptDocumentError(f"PDF {key!r} cannot be read ({type(error).__name__})") from None
    return PdfText(pages=pages, title=title)


def _read_pages(reader: PdfReader, *, key: str, max_chars: int, deadline: Deadline) -> list[str]:
    """Page after page until a budget is spent: page content inflated (checked before each page is
    read), characters extracted and the deadline (checked as pypdf extracts, see `_Watch`)."""
    content_budget = CONTENT_BYTES_PER_CHAR * max_chars
    watch = _Watch(key=key, max_chars=max_chars, deadline=deadline, pages=len(reader.pages))
    texts: list[str] = []
    content = 0
    for page in reader.pages:
        watch.page += 1
        watch.check()
        content += _content_bytes(page)
        if content > content_budget:
            raise DocumentTooLargeError(
                f"PDF {key!r}: page content inflates past {content_budget} bytes "
                f"({CONTENT_BYTES_PER_CHAR} per MAX_DOCUMENT_CHARS character) by page {watch.page} of "
                f"{watch.pages}; not indexed."
            )
        texts.append(page.extract_text(visitor_text=watch.on_text, visitor_operand_before=watch.on_operator))
    watch.check()
    return texts


class _Watch:
    """Stops pypdf in the middle of a page: it reports each piece of text it extracts (`on_text`)
    and calls `on_operator` before each operator, in form XObjects too, so a form drawn thousands
    of times cannot multiply a page's text or time. pypdf swallows errors raised inside a form: the
    next operator of the page raises again, out of `extract_text`."""

    def __init__(self, *, key: str, max_chars: int, deadline: Deadline, pages: int) -> None:
        self.key, self.max_chars, self.deadline, self.pages = key, max_chars, deadline, pages
        self.page = 0  # the page being read, from 1
        self.chars = 0  # extracted so far, this page's included

    def on_text(self, text: str, *_: Any) -> None:
        self.chars += len(text)

    def on_operator(self, *_: Any) -> None:
        self.check()

    def check(self) -> None:
        if self.chars > self.max_chars:
            raise DocumentTooLargeError(
                f"PDF {self.key!r}: more than MAX_DOCUMENT_CHARS={self.max_chars} characters of text by "
                f"page {self.page} of {self.pages}; not indexed."
            )
        if self.deadline.remaining() <= 0:
            raise DeadlineExceededError(
                f"PDF {self.key!r}: stopped at page {self.page} of {self.pages}, the invocation's "
                "deadline is near."
            )


def _content_bytes(page: PageObject) -> int:
    """The page's content streams, inflated (pypdf keeps the result for the text extraction)."""
    contents = page.get("/Contents")
    if contents is None:
        return 0
    resolved = contents.get_object()
    parts = resolved if isinstance(resolved, ArrayObject) else [resolved]
    streams = (part.get_object() for part in parts)
    return sum(len(stream.get_data()) for stream in streams if isinstance(stream, StreamObject))
