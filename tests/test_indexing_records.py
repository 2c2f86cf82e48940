"""The SQS/S3 records route: every failed record is logged (key, error type, a reason that never holds
document text); a key PostgreSQL cannot store is acknowledged; and when the invocation's deadline
nears, the records not done are reported in `batchItemFailures` (SQS redelivers them) instead of the
invocation timing out and failing the records already done."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fpdf import FPDF

from aws import Handler, deliver, object_keys, s3_notification
from embedding_engine.deadline import Deadline
from embedding_engine.errors import DeadlineExceededError
from embedding_engine.indexing.documents import extract_text
from embedding_engine.observability import logger
from flow import NEW, MakeFlow
from helpers import FakeLambdaContext

# Left for the work once the records route keeps its reserve (5 s here) from the remaining time.
WORK_SECONDS = 8


class CurrentStdout:
    """Writes to whatever `sys.stdout` is at the time (capsys swaps it between test phases)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


Logs = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Logs:
    """The JSON lines logged so far (the logger's stream, bound at import, now goes to capsys)."""
    monkeypatch.setattr(logger.registered_handler, "stream", CurrentStdout())
    return lambda: [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]


def in_key_order(handler: Handler) -> Handler:
    """The handler, given the batch's records sorted by object key (SQS does not promise an order)."""

    def invoke(event: Any, context: Any) -> Any:
        event["Records"].sort(key=lambda record: object_keys(record["body"]))
        return handler(event, context)

    return invoke


def failures(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The failed-record log lines, by object key."""
    return {line["source"].split("/", 3)[3]: line for line in lines if line.get("message") == "record failed"}


def test_past_the_deadline_no_record_is_started(make_flow: MakeFlow, logs: Logs) -> None:
    flow = make_flow()
    flow.upload("notes/bees.txt")
    flow.upload("recipes/sourdough.md")

    # 2 s left, less than the reserve kept to reply: nothing may start.
    delivery = deliver(flow.queue.url, flow.handler, FakeLambdaContext(remaining_ms=2_000))

    assert delivery.failed_ids == {record["messageId"] for record in delivery.event["Records"]}
    assert flow.documents() == {}
    assert flow.waiting() == 2
    failed = failures(logs())
    assert set(failed) == {"notes/bees.txt", "recipes/sourdough.md"}
    assert {line["error_type"] for line in failed.values()} == {"DeadlineExceededError"}
    assert all("deadline" in line["reason"] for line in failed.values())


def test_records_done_before_the_deadline_stay_done(make_flow: MakeFlow, engine: Any, logs: Logs) -> None:
    """a: one short note, done; b: a document whose embedding needs five times the time left,
    stopped; c: not started."""
    tokens_per_second = engine.embedder.throughput.tokens_per_second
    sentence = "The lighthouse keeper logged every passing ship, its flag and its cargo. "  # ~16 tokens
    sentences = math.ceil(5 * WORK_SECONDS * tokens_per_second / 16)
    long_text = "\n\n".join(sentence * 10 for _ in range(sentences // 10 + 1))
    flow = make_flow()
    flow.upload("a/note.txt", "The ferry leaves at seven.")
    flow.upload("b/logbook.txt", long_text)
    flow.upload("c/note.txt", "The ferry returns before noon.")

    context = FakeLambdaContext(remaining_ms=(WORK_SECONDS + 5) * 1000)
    delivery = deliver(flow.queue.url, in_key_order(flow.handler), context)

    assert len(delivery.event["Records"]) == 3
    assert delivery.failed_keys == {"b/logbook.txt", "c/note.txt"}
    assert set(flow.documents()) == {"a/note.txt"}
    assert flow.waiting() == 2  # redelivered later; a's message is gone
    failed = failures(logs())
    assert set(failed) == {"b/logbook.txt", "c/note.txt"}
    assert {line["error_type"] for line in failed.values()} == {"DeadlineExceededError"}
    assert "lighthouse keeper" not in json.dumps(failed)


def test_pdf_pages_are_not_read_past_the_deadline() -> None:
    document = FPDF()
    document.set_font("helvetica", size=12)
    for page in range(3):
        document.add_page()
        document.cell(text=f"Page {page} of the annual report.")
    passed = Deadline(time.monotonic() - 1)

    with pytest.raises(DeadlineExceededError) as caught:
        extract_text(bytes(document.output()), key="reports/annual.pdf", deadline=passed)

    assert "reports/annual.pdf" in str(caught.value) and "at page 1 of 3" in str(caught.value)


def test_a_direct_s3_invocation_past_its_deadline_raises(make_flow: MakeFlow) -> None:
    """Without SQS there is no partial reply: the invocation fails, and Lambda's async retries apply."""
    flow, key = make_flow(events=()), "incoming/report.txt"
    size = flow.upload(key, "Quarterly report: the new warehouse cut delivery times by half.")
    event = s3_notification(flow.bucket, key, action="created", sequencer="0A1B2C3D4E5F678901", size=size)

    with pytest.raises(DeadlineExceededError):
        flow.handler(event, FakeLambdaContext(remaining_ms=1_000))

    assert flow.documents() == {}


SECRET = "Confidential merger plans for Zephyr Corp"


def test_every_failed_record_is_logged_with_its_key_and_reason_never_its_text(
    make_flow: MakeFlow, database_url: str, logs: Logs
) -> None:
    flow = make_flow()
    flow.put("scans/broken.pdf", b"%PDF-1.7\n1 0 obj (" + SECRET.encode() + b") Tj endobj\n")
    flow.put("art/chart.png", b"\x89PNG\r\n\x1a\n" + SECRET.encode(), content_type="image/png")
    flow.upload("notes/refused.txt", f"{SECRET}. The board meets on Friday.")
    flow.upload("notes/bees.txt")
    flow.aws.sqs.send_message(QueueUrl=flow.queue.url, MessageBody=f"not a notification: {SECRET}")
    # A real PostgreSQL error whose message quotes the chunk's text.
    refused = flow.source("notes/refused.txt")
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION refuse_chunk() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refusing %', NEW.text; END $$"
        )
        db.execute(
            "CREATE TRIGGER refuse_chunk BEFORE INSERT ON chunks FOR EACH ROW"
            f" WHEN (NEW.source = '{refused}') EXECUTE FUNCTION refuse_chunk()"
        )
        try:
            delivery = flow.deliver()
        finally:
            db.execute("DROP TRIGGER refuse_chunk ON chunks")
            db.execute("DROP FUNCTION refuse_chunk()")

    assert len(delivery.event["Records"]) == 5 and len(delivery.failed_ids) == 4
    lines = logs()
    assert SECRET not in json.dumps(lines)
    failed = {line["message_id"]: line for line in lines if line.get("message") == "record failed"}
    assert set(failed) == delivery.failed_ids
    by_source = {line.get("source"): line for line in failed.values()}  # unknown: not logged
    assert set(by_source) == {None, refused, flow.source("scans/broken.pdf"), flow.source("art/chart.png")}
    assert by_source[refused]["error_type"] == "RaiseException"
    assert by_source[refused]["reason"] == "RaiseException (sqlstate P0001)"
    assert by_source[flow.source("scans/broken.pdf")]["error_type"] == "CorruptDocumentError"
    assert "scans/broken.pdf" in by_source[flow.source("scans/broken.pdf")]["reason"]
    assert by_source[flow.source("art/chart.png")]["error_type"] == "UnsupportedDocumentError"
    assert "not an S3 notification" in by_source[None]["reason"]
    assert all(line["level"] in ("WARNING", "ERROR") for line in failed.values())


def test_a_key_with_a_nul_is_acknowledged_as_unindexable(make_flow: MakeFlow, logs: Logs) -> None:
    """S3 keys arrive URL-encoded: "%00" decodes to a NUL, which PostgreSQL text cannot hold."""
    flow = make_flow(events=())
    flow.notify("notes/bad\x00name.txt", "created", NEW, size=12)
    flow.notify("notes/bees.txt", "created", NEW, size=flow.upload("notes/bees.txt"))

    delivery = flow.deliver()

    assert (len(delivery.event["Records"]), delivery.failed_ids) == (2, set())
    assert flow.waiting() == 0  # not retried towards the dead-letter queue
    assert set(flow.documents()) == {"notes/bees.txt"}
    [skipped] = [line for line in logs() if line.get("message") == "document skipped"]
    assert skipped["level"] == "WARNING"
    assert skipped["source"] == flow.source("notes/bad\x00name.txt")
    assert "NUL" in skipped["reason"]
