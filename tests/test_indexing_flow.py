"""Documents through the whole indexing flow on real parts: S3 and SQS (moto's server), the handler with
the real model, PostgreSQL + pgvector. Each case asserts on the rows in the database, or on /search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from aws import CREATED, REMOVED, s3_notification
from embedding_engine.indexing.store import normalize_sequencer
from flow import (
    KINDS,
    NEW,
    NEW_TEXT,
    NEWER,
    OLD,
    OLD_TEXT,
    QUERIES,
    TEXTS,
    MakeFlow,
    search,
)
from helpers import FakeLambdaContext


def test_text_markdown_html_and_pdf_are_indexed_and_found(make_flow: MakeFlow, client: TestClient) -> None:
    flow = make_flow()
    for key in TEXTS:
        flow.upload(key)

    delivery = flow.deliver()

    assert len(delivery.event["Records"]) == len(TEXTS)
    assert delivery.response == {"batchItemFailures": []}
    documents = flow.documents()
    for key, text in TEXTS.items():
        chunks = flow.chunks(key)
        assert chunks, key
        # Every line of every chunk is a line of the document as written (HTML: a paragraph's text).
        assert all(line in text for _, chunk, _ in chunks for line in chunk.splitlines()), key
        _, _, chunk_count, metadata = documents[key]
        assert (chunk_count, metadata["content_type"]) == (len(chunks), KINDS[Path(key).suffix])
    script_or_style = "SELECT 1 FROM chunks WHERE text LIKE '%XYZZY%' OR text LIKE '%color%'"
    assert flow.db.execute(script_or_style).fetchall() == []
    for query, key in QUERIES.items():
        assert search(client, query)[0]["source"] == flow.source(key), query


def test_keys_with_spaces_and_accents_are_stored_decoded(make_flow: MakeFlow) -> None:
    flow = make_flow()
    flow.upload("reports/Q3 résumé.txt", "Third quarter summary: revenue grew in every region.")

    assert flow.deliver().failed_ids == set()

    source = f"s3://{flow.bucket}/reports/Q3 résumé.txt"
    assert flow.db.execute("SELECT source FROM documents").fetchall() == [(source,)]
    assert flow.db.execute("SELECT DISTINCT source FROM chunks").fetchall() == [(source,)]


def test_a_message_delivered_twice_is_applied_once(make_flow: MakeFlow) -> None:
    flow = make_flow()
    flow.upload("notes/bees.txt")
    [record] = flow.deliver().event["Records"]
    before = flow.chunks("notes/bees.txt")

    flow.aws.sqs.send_message(QueueUrl=flow.queue.url, MessageBody=record["body"])  # at-least-once
    again = flow.deliver()

    assert (len(again.event["Records"]), again.failed_ids) == (1, set())
    assert before
    assert flow.chunks("notes/bees.txt") == before  # the same ids, not even rewritten
    assert flow.db.execute("SELECT count(*) FROM chunks").fetchone() == (len(before),)


def test_a_newer_upload_replaces_the_chunks(make_flow: MakeFlow, client: TestClient) -> None:
    flow, key = make_flow(events=()), "guides/harbour.txt"
    flow.notify(key, "created", OLD, size=flow.upload(key, OLD_TEXT))
    assert flow.deliver().failed_ids == set()
    assert len(flow.chunks(key)) > 1

    flow.notify(key, "created", NEW, size=flow.upload(key, NEW_TEXT))
    assert flow.deliver().failed_ids == set()

    assert [text for _, text, _ in flow.chunks(key)] == [NEW_TEXT]
    assert flow.documents()[key][:3] == (False, normalize_sequencer(NEW), 1)
    assert [hit["text"] for hit in search(client, "when does the ferry leave?")] == [NEW_TEXT]
    assert flow.db.execute("SELECT 1 FROM chunks WHERE text LIKE '%lighthouse%'").fetchall() == []


@pytest.mark.parametrize(
    ("first", "late", "expected"),
    [
        pytest.param(("removed", NEWER), ("created", NEW), (True, NEWER, 0), id="delete-then-older-create"),
        pytest.param(("created", NEWER), ("created", OLD), (False, NEWER, 1), id="create-then-older-create"),
    ],
)
def test_an_older_event_arriving_late_changes_nothing(
    make_flow: MakeFlow, first: tuple[Any, str], late: tuple[Any, str], expected: tuple[Any, ...]
) -> None:
    flow, key = make_flow(events=()), "notes/bees.txt"
    size = flow.upload(key, "Honeybees turn flower nectar into honey.")
    flow.notify(key, first[0], first[1], size=size)
    assert flow.deliver().failed_ids == set()
    before = flow.chunks(key)

    flow.notify(key, late[0], late[1], size=size)
    assert flow.deliver().failed_ids == set()

    deleted, sequencer, chunk_count = expected
    assert len(before) == chunk_count
    assert flow.chunks(key) == before  # nothing indexed, or the chunks not even rewritten
    assert flow.documents()[key][:3] == (deleted, normalize_sequencer(sequencer), chunk_count)


def test_deleting_the_object_removes_its_chunks(make_flow: MakeFlow) -> None:
    flow = make_flow(events=(CREATED, REMOVED))
    flow.upload("notes/bees.txt")
    flow.deliver()
    assert flow.chunks("notes/bees.txt")

    flow.aws.s3.delete_object(Bucket=flow.bucket, Key="notes/bees.txt")
    assert flow.deliver().failed_ids == set()

    assert flow.chunks("notes/bees.txt") == []
    deleted, _, chunk_count, _ = flow.documents()["notes/bees.txt"]
    assert (deleted, chunk_count) == (True, 0)


def test_a_direct_s3_invocation_indexes_the_object(make_flow: MakeFlow) -> None:
    flow, key = make_flow(events=()), "incoming/quarterly report.txt"
    size = flow.upload(key, "Quarterly report: the new warehouse cut delivery times by half.")
    sequencer = "0A1B2C3D4E5F678901"  # the sample payload's
    event = s3_notification(flow.bucket, key, action="created", sequencer=sequencer, size=size)

    result = flow.handler(event, FakeLambdaContext())

    chunks = flow.chunks(key)
    assert chunks
    assert result == {"outcomes": [{"source": flow.source(key), "action": "indexed", "chunks": len(chunks)}]}
    assert flow.documents()[key][:3] == (False, normalize_sequencer(sequencer), len(chunks))
