"""Work per document is bounded: the characters extracted (PDF pages are inflated and read only up to
the budget), the chunks, and text that is not text. A document over a bound is acknowledged, not
retried, and its older version leaves the index; one that is not text fails alone."""

from __future__ import annotations

import json
import random
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from fpdf import FPDF

from embedding_engine.errors import DocumentTooLargeError, ObjectSkippedError
from embedding_engine.events.records import DocumentRecords
from embedding_engine.indexing.documents import extract_text
from embedding_engine.indexing.fetch import S3Fetcher
from embedding_engine.indexing.pdf_text import MIN_STREAM_BYTES
from embedding_engine.indexing.pipeline import Indexer
from embedding_engine.indexing.store import normalize_sequencer
from embedding_engine.observability import logger
from flow import NEW, OLD, MakeFlow

# A page whose content stream is 24 MB of spaces inside one string: about 24 KB once deflated.
BOMB_SPACES = 24_000_000


def bomb_pdf(content: bytes, *, pages: int = 1, form: bytes = b"") -> bytes:
    """A hand-built PDF whose every page draws `content`, deflated (what zip bombs do to PDFs), with
    a form XObject /Fm1 drawing `form`."""
    stream = zlib.compress(content, 9)
    form_stream = zlib.compress(form, 9)
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(pages))
    resources = b"<< /Font << /F1 3 0 R >> /XObject << /Fm1 4 0 R >> >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
        + f" /Length {len(form_stream)} /Filter /FlateDecode >>\nstream\n".encode()
        + form_stream
        + b"\nendstream",
    ]
    for i in range(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
            + resources
            + f" /Contents {6 + 2 * i} 0 R >>".encode()
        )
        objects.append(
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream"
        )
    pdf = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(pdf)
    pdf += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    pdf += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    pdf += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(pdf)


def text_pdf(pages: list[str]) -> bytes:
    document = FPDF()
    document.set_font("helvetica", size=10)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 5, text)
    return bytes(document.output())


def test_the_bomb_is_a_real_pdf() -> None:
    """The same construction with a small page reads as the text it draws."""
    document = extract_text(bomb_pdf(b"BT /F1 12 Tf 72 700 Td (Quarterly figures) Tj ET"), key="ok.pdf")
    assert document.text == "Quarterly figures"


def refused_with_peak_memory(data: bytes, *, key: str) -> tuple[DocumentTooLargeError, int]:
    """The `DocumentTooLargeError` that extracting `data` raises, and the peak of Python's allocations
    (tracemalloc) meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(DocumentTooLargeError) as caught:
            extract_text(data, key=key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, peak


def test_a_pdf_page_that_inflates_to_tens_of_megabytes_stops_at_the_decompression_limit() -> None:
    data = bomb_pdf(b"BT /F1 12 Tf 72 700 Td (" + b" " * BOMB_SPACES + b") Tj ET")
    assert len(data) < 30_000
    error, peak = refused_with_peak_memory(data, key="inbox/bomb.pdf")
    message = str(error)
    assert "inbox/bomb.pdf" in message and "LimitReachedError" in message  # pypdf's inflate limit
    assert f"inflates past {MIN_STREAM_BYTES} bytes" in message
    assert isinstance(error, ObjectSkippedError)  # acknowledged like an object over the size cap
    # Inflated up to the cap (4 MiB for the default MAX_DOCUMENT_CHARS; zlib's output buffer doubles
    # while it fills), never to the 24 MB the page holds.
    assert peak < 2.5 * MIN_STREAM_BYTES < BOMB_SPACES, peak


def test_pdf_pages_are_read_only_until_the_character_budget_is_spent() -> None:
    pages = [f"Page {n}. " + "Revenue grew in every region this quarter. " * 25 for n in range(30)]
    page_chars = len(extract_text(text_pdf(pages[:1]), key="one.pdf").text)
    assert 1000 < page_chars < 1250
    with pytest.raises(DocumentTooLargeError) as caught:
        extract_text(text_pdf(pages), key="reports/long.pdf", max_chars=2500)
    message = str(caught.value)
    assert "reports/long.pdf" in message and "MAX_DOCUMENT_CHARS" in message
    assert "by page 3 of 30" in message  # pages 4 to 30 were never extracted


def test_a_pdf_of_many_bomb_pages_stops_at_the_document_budget() -> None:
    """Pages of whitespace give no characters, but their inflated bytes count: the page loop stops."""
    data = bomb_pdf(b"BT /F1 12 Tf 72 700 Td" + b" " * 1_500_000 + b"(x) Tj ET", pages=40)
    with pytest.raises(DocumentTooLargeError) as caught:
        extract_text(data, key="inbox/pages.pdf")
    # 16,000,000 bytes (8 per character of the default budget): 10 pages of 1.5 MB fit, the 11th does not.
    assert str(caught.value) == (
        "PDF 'inbox/pages.pdf': page content inflates past 16000000 bytes (8 per MAX_DOCUMENT_CHARS "
        "character) by page 11 of 40; not indexed."
    )


def test_a_form_drawn_hundreds_of_times_cannot_multiply_a_page_s_text() -> None:
    """A 100,000-character form XObject drawn 400 times would be 40 M characters of one page: the
    extraction stops inside the page once the budget is spent."""
    page = b"q " + b"/Fm1 Do " * 400 + b"Q"
    form = b"BT /F1 12 Tf 72 700 Td (" + b"a" * 100_000 + b") Tj ET"
    error, peak = refused_with_peak_memory(bomb_pdf(page, form=form), key="inbox/forms.pdf")
    assert "MAX_DOCUMENT_CHARS=2000000 characters of text by page 1 of 1" in str(error)
    assert peak < 20_000_000, peak  # the page's 40 M characters were never built


def bounded_records(engine: Any, **bounds: int) -> DocumentRecords:
    """The SQS/S3 route around an indexer of the warm model and store, with its own bounds."""
    fetcher = S3Fetcher(max_bytes=engine.settings.max_document_bytes)
    overlap = engine.settings.chunk_overlap_tokens
    indexer = Indexer(engine.embedder, engine.store, fetcher=fetcher, overlap_tokens=overlap, **bounds)
    return DocumentRecords(indexer)


Logs = Callable[[], tuple[str, list[dict[str, Any]]]]


class CurrentStdout:
    """Writes to whatever `sys.stdout` is at the time (capsys swaps it between test phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Logs:
    """Reads what was logged so far: stdout, and its JSON lines. The logger's stream was bound at
    import; it is pointed at the stdout this test captures."""
    monkeypatch.setattr(logger.registered_handler, "stream", CurrentStdout())

    def read() -> tuple[str, list[dict[str, Any]]]:
        out = capsys.readouterr().out
        return out, [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    return read


PARAGRAPHS = "\n\n".join(
    f"Paragraph {n}: the harbour ferry timetable changed again, so the keeper wrote it down. " * 12
    for n in range(5)
)


@pytest.mark.parametrize(
    ("bounds", "reason"),
    [({"max_chunks": 2}, "MAX_DOCUMENT_CHUNKS"), ({"max_chars": 1000}, "MAX_DOCUMENT_CHARS")],
)
def test_a_document_over_a_bound_is_acknowledged_and_its_old_version_removed(
    make_flow: MakeFlow,
    engine: Any,
    logs: Logs,
    bounds: dict[str, int],
    reason: str,
) -> None:
    flow, key = make_flow(events=()), "guides/ferry.txt"
    flow.notify(key, "created", OLD, size=flow.upload(key, "The ferry leaves at seven."))
    assert flow.deliver().failed_ids == set()
    assert flow.chunks(key)
    logs()

    flow.notify(key, "created", NEW, size=flow.upload(key, PARAGRAPHS))
    delivery = flow.deliver(bounded_records(engine, **bounds))

    assert (len(delivery.event["Records"]), delivery.failed_ids) == (1, set())
    assert flow.waiting() == 0  # not retried
    assert flow.chunks(key) == []
    assert flow.documents()[key][:3] == (True, normalize_sequencer(NEW), 0)
    out, lines = logs()
    [skipped] = [line for line in lines if line.get("message") == "document skipped"]
    assert skipped["level"] == "WARNING" and skipped["source"] == flow.source(key)
    assert reason in skipped["reason"] and key in skipped["reason"]
    assert "harbour ferry timetable" not in out


def test_random_bytes_named_txt_fail_alone_and_index_nothing(make_flow: MakeFlow, logs: Logs) -> None:
    flow = make_flow()
    flow.put("inbox/noise.txt", random.Random(5).randbytes(8192))
    flow.upload("notes/bees.txt")

    delivery = flow.deliver()

    assert delivery.failed_keys == {"inbox/noise.txt"}
    assert flow.chunks("inbox/noise.txt") == []
    assert flow.chunks("notes/bees.txt")
    _, lines = logs()
    [failure] = [line for line in lines if line.get("source") == flow.source("inbox/noise.txt")]
    assert failure["level"] == "WARNING" and "unprintable" in failure["reason"]
