"""Document extraction: encodings, plain text, Markdown, HTML and PDF from real bytes."""

from __future__ import annotations

import codecs
import gzip
import io
import random
import traceback
import zipfile
from pathlib import PurePosixPath

import pytest
from fpdf import FPDF
from pypdf import PdfWriter

from embedding_engine.errors import (
    CorruptDocumentError,
    DocumentError,
    DocumentTooLargeError,
    NotTextDocumentError,
    UnsupportedDocumentError,
)
from embedding_engine.indexing.documents import SUPPORTED_EXTENSIONS, detect_kind, extract_text
from embedding_engine.indexing.text_decoding import decode_text, unprintable_ratio

SECRET = "Confidential merger plans for Zephyr Corp"


def make_pdf(pages: list[str], *, title: str | None = None, compress: bool = True) -> bytes:
    """A real PDF from fpdf2, one string per page ("" makes a page without text)."""
    pdf = FPDF()
    pdf.set_compression(compress)
    pdf.set_font("helvetica", size=12)
    if title is not None:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


REAL_PDF = make_pdf([SECRET, SECRET], compress=False)  # uncompressed: the secret is in its bytes


def encrypt_pdf(data: bytes, *, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.txt", SECRET)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "text", "encoding"),
    [
        ("Hello, wörld ✓".encode(), "Hello, wörld ✓", "utf-8"),
        (codecs.BOM_UTF8 + "Grüße".encode(), "Grüße", "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "Grüße".encode("utf-16-le"), "Grüße", "utf-16"),
        (codecs.BOM_UTF16_BE + "Grüße".encode("utf-16-be"), "Grüße", "utf-16"),
        ("Grüße".encode("utf-32"), "Grüße", "utf-32"),
        ("café".encode("cp1252"), "café", "cp1252"),
        ("Le café est très bon, déjà vu.".encode("cp1252"), "Le café est très bon, déjà vu.", "cp1252"),
        ("naïve façade — “quotes” €5".encode("cp1252"), "naïve façade — “quotes” €5", "cp1252"),
        ("Grüße aus Köln, schöne Straße.".encode("latin-1"), "Grüße aus Köln, schöne Straße.", "cp1252"),
        ("Привет, как дела? Это тест.".encode("cp1251"), "Привет, как дела? Это тест.", "cp1251"),
    ],
)
def test_decode_text(data: bytes, text: str, encoding: str) -> None:
    assert decode_text(data) == (text, encoding)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"ok \xc3\x28 ok",
        bytes(range(256)),
        codecs.BOM_UTF16_LE + b"\x00",
        random.Random(7).randbytes(4096),
    ],
)
def test_bad_bytes_never_raise(data: bytes) -> None:
    """Decoding never fails; extraction gives text without NULs, or refuses bytes that are not text."""
    text, encoding = decode_text(data)
    assert isinstance(text, str)
    codecs.lookup(encoding)
    try:
        document = extract_text(data, key="noise.txt")
    except NotTextDocumentError as refused:
        assert "noise.txt" in str(refused)
    else:
        assert "\x00" not in document.text


def test_plain_text_is_tidied_but_keeps_paragraphs() -> None:
    data = b"\n\nline one  \r\nline two\rline\x00 three\n\n\n\n  next para\n\n"
    document = extract_text(data, key="notes.txt")
    assert document.text == "line one\nline two\nline three\n\n  next para"
    assert document.content_type == "text/plain"
    assert document.metadata == {"encoding": "utf-8"}


def test_markdown_is_kept_as_written() -> None:
    markdown = "# Title\n\nSome *emphasis*, a [link](https://example.com).\n\n- one\n  - nested\n\n    code()"
    document = extract_text(markdown.encode(), key="docs/README.MD", content_type="binary/octet-stream")
    assert document == extract_text(markdown.encode(), key="x", content_type="text/markdown")
    assert (document.text, document.content_type) == (markdown, "text/markdown")


PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title> Caf&eacute; &amp; Co </title>
<style>body { color: red }</style><script>var token = "script text";</script></head>
<body><noscript>noscript text</noscript><!-- comment text -->
<nav><a href="/">Home</a> | <a href="/menu">Menu</a></nav>
<article><h1>Opening hours</h1><p>We open at <b>8&nbsp;am</b>
   and close at 6&nbsp;pm.</p><div>Closed on <div>Sundays.</div></div></article>
<template><p>template text</p></template><svg><title>svg title</title><text>svg text</text></svg>
</body></html>"""


def test_html_visible_text_and_title() -> None:
    document = extract_text(PAGE, key="site/index.html")
    assert document.text == (
        "Home | Menu\n\nOpening hours\n\nWe open at 8 am and close at 6 pm.\n\nClosed on\n\nSundays."
    )
    assert document.content_type == "text/html"
    assert document.metadata == {"encoding": "utf-8", "title": "Café & Co"}
    for hidden in ("script text", "noscript", "comment", "template", "svg", "color"):
        assert hidden not in document.text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<div>a<div>b</div>c</div>", "a\n\nb\n\nc"),
        ("<h2>Heading</h2>Body text", "Heading\n\nBody text"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<span>x</span>  \n\t <span>y</span><span>z</span>", "x yz"),
        ("<ul><li>One</li><li>Two</li></ul>after", "One\nTwo\n\nafter"),
        ("<table><tr><th>a</th><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>", "a b\nc d"),
        ("<p>&lt;tag&gt; &amp; &eacute;t&eacute; &#8364;5 caf&#xe9;</p>", "<tag> & été €5 café"),
        ("<pre>def f():\n    return 1</pre><p>after</p>", "def f():\n    return 1\n\nafter"),
        ("<script>if (a < b) { x() }</script><style>p{}</style>seen<!-- unseen -->", "seen"),
        ("<p>unclosed <b>tags <i>everywhere", "unclosed tags everywhere"),
        ("", ""),
    ],
)
def test_html_blocks_and_entities(markup: str, text: str) -> None:
    document = extract_text(markup.encode(), key="page.htm")
    assert document.text == text
    assert "title" not in document.metadata


@pytest.mark.parametrize(
    ("head", "title"),
    [("<title>A &lt;b&gt;\n  title</title>", "A <b> title"), ("<title>  </title>", None), ("", None)],
)
def test_html_title(head: str, title: str | None) -> None:
    markup = f"<html><head>{head}</head><body><svg><title>icon</title></svg>text</body></html>"
    document = extract_text(markup.encode(), key="page.html")
    assert document.metadata.get("title") == title
    assert document.text == "text"


def test_html_in_a_legacy_encoding() -> None:
    markup = "<html><body><p>Le café est très bon.</p></body></html>".encode("cp1252")
    document = extract_text(markup, key="old.html", content_type="text/html; charset=iso-8859-1")
    assert (document.text, document.metadata["encoding"]) == ("Le café est très bon.", "cp1252")


def test_malformed_html_is_read_or_corrupt_never_leaked() -> None:
    # Python 3.11's html.parser raises AssertionError on a bad "<![" section; newer ones skip it.
    try:
        document = extract_text(f"<p>{SECRET}</p><![x9>".encode(), key="broken.html")
    except CorruptDocumentError as error:
        assert "broken.html" in str(error) and SECRET not in str(error)
    else:
        assert SECRET in document.text


def test_multi_page_pdf() -> None:
    pages = ["Alpha page text.", "Bravo page text.\nSecond line.", "Charlie page text."]
    document = extract_text(make_pdf(pages, title="Quarterly Report"), key="reports/q3.pdf")
    assert document.text == "Alpha page text.\n\nBravo page text.\nSecond line.\n\nCharlie page text."
    assert document.content_type == "application/pdf"
    assert document.metadata == {"pages": 3, "title": "Quarterly Report"}


def test_pdf_without_text_is_empty_not_an_error() -> None:
    document = extract_text(make_pdf(["", ""]), key="scan.pdf")
    assert document == extract_text(make_pdf(["", ""]), key="scan", content_type="application/pdf")
    assert (document.text, document.metadata) == ("", {"pages": 2})


def test_pdf_encrypted_without_a_user_password_is_read() -> None:
    data = encrypt_pdf(make_pdf(["Readable page."]), user_password="")
    assert extract_text(data, key="restricted.pdf").text == "Readable page."


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(REAL_PDF[: len(REAL_PDF) // 2], id="truncated-half"),
        pytest.param(REAL_PDF[:-12], id="truncated-tail"),
        pytest.param(random.Random(1).randbytes(3000), id="random-bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(SECRET.encode(), id="text-named-pdf"),
        pytest.param(encrypt_pdf(REAL_PDF, user_password="s3cret"), id="password-protected"),
    ],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(CorruptDocumentError) as caught:
        extract_text(data, key="inbox/broken.pdf", content_type="binary/octet-stream")
    assert "inbox/broken.pdf" in str(caught.value)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    ("key", "content_type", "kind"),
    [
        ("notes.txt", None, "text/plain"),
        ("NOTES.TEXT", "binary/octet-stream", "text/plain"),
        ("docs/readme.Md", "application/octet-stream", "text/markdown"),
        ("guide.markdown", "", "text/markdown"),
        ("site/Index.HTM", None, "text/html"),
        ("a.b/report.PDF", "binary/octet-stream", "application/pdf"),
        ("upload.bin", "application/pdf", "application/pdf"),
        ("page.txt", "text/html; charset=iso-8859-1", "text/html"),
        ("report.pdf", "text/plain", "text/plain"),
        ("blob", "TEXT/Markdown; charset=UTF-8", "text/markdown"),
        ("page.xhtml", "application/xhtml+xml", "text/html"),
    ],
)
def test_detect_kind(key: str, content_type: str | None, kind: str) -> None:
    assert detect_kind(key, content_type) == kind


@pytest.mark.parametrize(
    ("key", "content_type", "data"),
    [
        ("photos/cat.png", "image/png", b"\x89PNG\r\n\x1a\n" + SECRET.encode()),
        ("photos/cat.PNG", None, b"\x89PNG\r\n\x1a\n" + SECRET.encode()),
        ("bundle.zip", "application/zip", zip_bytes()),
        ("bundle.zip", "binary/octet-stream", zip_bytes()),
        ("contract.docx", None, zip_bytes()),
        ("notes.txt", "image/png", SECRET.encode()),
        ("folder.pdf/README", None, SECRET.encode()),
    ],
)
def test_unsupported_documents(key: str, content_type: str | None, data: bytes) -> None:
    with pytest.raises(UnsupportedDocumentError) as caught:
        extract_text(data, key=key, content_type=content_type)
    message = str(caught.value)
    assert key in message and str(content_type or "(none)") in message
    assert (PurePosixPath(key).suffix.lower() or "(none)") in message
    assert all(extension in message for extension in SUPPORTED_EXTENSIONS)
    assert SECRET not in message
    assert isinstance(caught.value, DocumentError)


def test_supported_extensions() -> None:
    assert {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"} == SUPPORTED_EXTENSIONS
    for extension in SUPPORTED_EXTENSIONS:
        detect_kind(f"file{extension.upper()}", None)


# UTF-16 without a byte order mark. When every byte is below 0x80 the bytes are valid UTF-8 too, and
# read as UTF-8 they are control characters and NULs ("\x1f\x04@\x04...") or, for CJK, ASCII noise.
SHORT_CHINESE = "你好世界。"  # UTF-16BE: b"O`Y}N\x16uL0\x02"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Привет, как дела? Это тест русского текста.", "utf-16-le"),
        ("Привет мир", "utf-16-le"),
        (SHORT_CHINESE, "utf-16-be"),
        ("我爱你。", "utf-16-be"),
        ("Hello world, this is plain English.\n", "utf-16-le"),
        ("Hello world, this is plain English.\n", "utf-16-be"),
        ("नमस्ते, आप कैसे हैं? यह एक परीक्षण है।", "utf-16-le"),
        ("สวัสดีครับ นี่คือการทดสอบ", "utf-16-be"),
        ("こんにちは、世界。テストです。", "utf-16-be"),
    ],
)
def test_utf16_without_a_byte_order_mark(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == (text, encoding)


def test_the_short_chinese_sample_is_valid_utf8() -> None:
    """The trap: strict UTF-8 accepts these bytes, so only plausibility can tell."""
    data = SHORT_CHINESE.encode("utf-16-be")
    assert all(byte < 0x80 for byte in data)
    assert data.decode("utf-8") == "O`Y}N\x16uL0\x02"


@pytest.mark.parametrize(
    "text",
    [
        "Plain ASCII, nothing special.",
        "O`Y}",  # ASCII that would also be UTF-16BE "你好": plain text wins
        "Tabs\tand\fform feeds\r\nare text.",
        "\x1b[32mINFO\x1b[0m started\n\x1b[31mERROR\x1b[0m stopped after 3 retries\n",  # a coloured log
    ],
)
def test_text_that_is_valid_utf8_stays_utf8(text: str) -> None:
    assert decode_text(text.encode()) == (text, "utf-8")


MULTILINGUAL = {
    "en": "The quick brown fox jumps over the lazy dog. Indexing keeps every paragraph searchable.",
    "fr": "Le café est très bon, déjà vu. Où est la bibliothèque ? À bientôt, François !",
    "de": "Grüße aus Köln, schöne Straße. Die Bäume blühen im Frühling.",
    "ru": "Привет, как дела? Это тест. Мы читаем документ на русском языке.",
    "el": "Γειά σου κόσμε, αυτό είναι ένα τεστ ελληνικού κειμένου.",  # noqa: RUF001
    "ar": "مرحبا بالعالم، هذا اختبار للنص العربي في المستند.",
    "he": "שלום עולם, זהו מבחן של טקסט בעברית.",
    "hi": "नमस्ते दुनिया, यह हिंदी पाठ का परीक्षण है।",
    "zh": "我们今天去公园散步，天气很好。索引让每个段落都能被搜索到。",  # noqa: RUF001
    "ja": "こんにちは世界。これは日本語のテキストのテストです。",
    "ko": "안녕하세요 세계, 이것은 한국어 텍스트 테스트입니다.",
    "th": "สวัสดีชาวโลก นี่คือการทดสอบข้อความภาษาไทย",
    "emoji": "Launch day 🚀 went well 🎉 — thanks, team 👩‍💻!",
}


@pytest.mark.parametrize(
    ("language", "encoding"),
    [(language, "utf-8") for language in MULTILINGUAL]
    + [(language, "utf-16-le") for language in MULTILINGUAL]
    + [(language, "utf-16-be") for language in MULTILINGUAL]
    + [("fr", "cp1252"), ("de", "cp1252"), ("ru", "cp1251"), ("el", "cp1253"), ("ar", "cp1256")]
    + [("ja", "shift_jis"), ("zh", "gb18030"), ("ko", "euc-kr")],
)
def test_real_text_in_many_languages_is_read_not_refused(language: str, encoding: str) -> None:
    text = MULTILINGUAL[language]
    assert extract_text(text.encode(encoding), key=f"texts/{language}.txt").text == text


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(random.Random(8).randbytes(1024 * 1024), id="random-1MB"),
        pytest.param(random.Random(9).randbytes(300), id="random-300B"),
        pytest.param(bytes(range(256)) * 16, id="every-byte"),
        pytest.param(zip_bytes(), id="zip"),
        pytest.param(gzip.compress(SECRET.encode() * 200), id="gzip"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + random.Random(10).randbytes(2000), id="png"),
    ],
)
def test_bytes_that_are_not_text_are_refused(data: bytes) -> None:
    with pytest.raises(NotTextDocumentError) as caught:
        extract_text(data, key="inbox/noise.txt")
    message = str(caught.value)
    assert "inbox/noise.txt" in message and "unprintable" in message
    assert SECRET not in message


def test_text_over_the_character_bound_is_refused_after_decoding() -> None:
    data = ("A line of a very long plain text report.\n" * 60_000).encode()  # 2.5 M characters
    with pytest.raises(DocumentTooLargeError) as caught:
        extract_text(data, key="reports/huge.txt")
    message = str(caught.value)
    assert "reports/huge.txt" in message and "MAX_DOCUMENT_CHARS" in message


@pytest.mark.parametrize(
    ("text", "ratio"),
    [
        ("", 0.0),
        ("Tabs\tnew lines\nform feeds\f, CR\r and Word's line break\v are text", 0.0),
        ("abc\x00", 0.25),  # NUL, like every other control character
        ("ab\ufffd\ufffd", 0.5),  # bytes that did not decode
        ("a\ue000\U000f0000b", 0.5),  # private use, in and beyond the BMP
        ("a\u0378", 0.5),  # unassigned
        ("a\ud800", 0.5),  # a lone surrogate
        ("\u00a0\u200d\u00ad", 0.0),  # no-break space, zero-width joiner, soft hyphen: text
    ],
)
def test_unprintable_ratio(text: str, ratio: float) -> None:
    assert unprintable_ratio(text) == ratio


def test_the_refusal_names_the_key_and_the_ratio_never_the_text() -> None:
    data = (SECRET + "\x01\x02\x03\x04" * 40).encode()
    with pytest.raises(NotTextDocumentError) as caught:
        extract_text(data, key="inbox/mixed.txt")
    assert str(caught.value).startswith("'inbox/mixed.txt' is not text: 80% of its characters")
    assert SECRET not in str(caught.value)


def test_html_is_bounded_by_its_visible_text_not_its_markup() -> None:
    markup = f"<html><head><style>{'p { color: red } ' * 500}</style></head><body><p>Short.</p></body></html>"
    assert extract_text(markup.encode(), key="page.html", max_chars=100).text == "Short."
    with pytest.raises(DocumentTooLargeError) as caught:
        extract_text(f"<p>{'Long text. ' * 20}</p>".encode(), key="site/long.html", max_chars=100)
    assert "site/long.html" in str(caught.value) and "MAX_DOCUMENT_CHARS=100" in str(caught.value)
