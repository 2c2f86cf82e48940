"""S3 Batch Operations tasks (backfill and reindex) through `lambda_handler`: AWS's own payloads for
invocation schemas 1.0 and 2.0, objects in moto's S3, rows in the real PostgreSQL, the real model."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote_plus

import pytest

from aws import CREATED
from embedding_engine.events.batch_operations import BatchOperationTasks
from embedding_engine.indexing.store import ChunkStore, normalize_sequencer
from flow import NEW, NEW_TEXT, OLD, TEXTS, Flow, MakeFlow, records
from helpers import FakeLambdaContext, load_event


def task_event(flow: Flow, key: str, *, schema: str = "2.0", version_id: str | None = None) -> dict[str, Any]:
    """AWS's example event of `schema` (tests/events/s3_batch_operations_v*.json) for one object of
    the flow's bucket, its key URL-encoded as Batch Operations sends it."""
    event = load_event("s3_batch_operations_v1" if schema == "1.0" else "s3_batch_operations_v2")
    [task] = event["tasks"]
    task["s3Key"] = quote_plus(key, safe="/")
    task["s3VersionId"] = version_id
    if schema == "1.0":
        task["s3BucketArn"] = f"arn:aws:s3:::{flow.bucket}"
    else:
        task["s3Bucket"] = flow.bucket
    return event


def run(flow: Flow, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    response: dict[str, Any] = flow.handler(event, context or FakeLambdaContext(remaining_ms=300_000))
    return response


def only_result(response: dict[str, Any]) -> dict[str, Any]:
    [result] = response["results"]
    return dict(result)


@pytest.mark.parametrize("schema", ["1.0", "2.0"])
def test_a_task_of_either_schema_indexes_its_object_and_answers_in_batch_operations_shape(
    make_flow: MakeFlow, schema: str
) -> None:
    flow = make_flow(events=())  # objects already in the bucket: S3 notified nobody
    key = "reports/Q3 résumé+notes.txt"
    flow.upload(key, TEXTS["notes/bees.txt"])
    event = task_event(flow, key, schema=schema)

    response = run(flow, event)

    assert response == {
        "invocationSchemaVersion": schema,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [
            {
                "taskId": event["tasks"][0]["taskId"],
                "resultCode": "Succeeded",
                "resultString": f"indexed: {len(flow.chunks(key))} chunks",
            }
        ],
    }
    assert flow.chunks(key), "the decoded key was read and indexed"
    assert flow.documents()[key][1] == normalize_sequencer("0")


def test_a_task_for_an_object_a_newer_notification_indexed_changes_nothing(make_flow: MakeFlow) -> None:
    flow = make_flow(events=())
    key = "notes/bees.txt"
    flow.upload(key)
    flow.notify(key, "created", NEW)
    assert flow.deliver().failed_ids == set()
    before = (flow.chunks(key), flow.documents())

    result = only_result(run(flow, task_event(flow, key)))

    assert result["resultCode"] == "Succeeded"
    assert result["resultString"].startswith("unchanged")
    assert (flow.chunks(key), flow.documents()) == before  # same ids, texts, times and sequencer


def test_running_the_same_job_twice_indexes_once(make_flow: MakeFlow) -> None:
    flow = make_flow(events=())
    key = "recipes/sourdough.md"
    flow.upload(key)
    assert only_result(run(flow, task_event(flow, key)))["resultString"].startswith("indexed")
    first = flow.chunks(key)

    again = only_result(run(flow, task_event(flow, key, schema="1.0")))

    assert again["resultCode"] == "Succeeded" and again["resultString"].startswith("unchanged")
    assert flow.chunks(key) == first


def test_a_notification_after_the_backfill_still_applies_the_newer_version(make_flow: MakeFlow) -> None:
    flow = make_flow(events=())
    key = "notes/ferry.txt"
    flow.upload(key, "The ferry timetable is posted at the harbour office.")
    run(flow, task_event(flow, key))

    flow.upload(key, NEW_TEXT)
    flow.notify(key, "created", OLD)  # the oldest real sequencer still outranks a task's
    assert flow.deliver().failed_ids == set()

    assert [text for _, text, _ in flow.chunks(key)] == [NEW_TEXT]
    assert flow.documents()[key][1] == normalize_sequencer(OLD)


def test_an_unreadable_document_is_a_permanent_failure_with_a_reason_and_no_text(make_flow: MakeFlow) -> None:
    flow = make_flow(events=())
    secret_words = "Confidential quarterly numbers"
    flow.put("broken.pdf", b"%PDF-1.7\n" + secret_words.encode() + b"\n%%EOF")

    result = only_result(run(flow, task_event(flow, "broken.pdf")))

    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith("PermanentFailure: ") and "broken.pdf" in result["resultString"]
    assert secret_words not in result["resultString"]
    assert flow.chunks("broken.pdf") == []


def test_a_missing_object_succeeds_as_skipped(make_flow: MakeFlow) -> None:
    flow = make_flow(events=())

    result = only_result(run(flow, task_event(flow, "gone.txt")))

    assert result["resultCode"] == "Succeeded"
    assert result["resultString"].startswith("skipped: ") and "no longer exists" in result["resultString"]


def test_a_database_outage_is_a_temporary_failure_batch_operations_retries(
    make_flow: MakeFlow, engine: Any
) -> None:
    flow = make_flow(events=())
    flow.upload("notes/bees.txt")
    with socket.socket() as closed:  # a port nothing listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://nobody@127.0.0.1:{port}/none"
    store = ChunkStore(url, model_id=engine.embedder.model_id, dimensions=engine.embedder.dimensions)
    tasks = BatchOperationTasks(records(engine, store, max_bytes=10_000_000).indexer)

    result = only_result(tasks(task_event(flow, "notes/bees.txt"), FakeLambdaContext(remaining_ms=300_000)))

    assert result["resultCode"] == "TemporaryFailure"
    assert "The document store is unavailable" in result["resultString"]


def test_a_task_past_the_invocation_deadline_is_a_temporary_failure(make_flow: MakeFlow) -> None:
    flow = make_flow(events=())
    flow.upload("notes/bees.txt")

    result = only_result(run(flow, task_event(flow, "notes/bees.txt"), FakeLambdaContext(remaining_ms=2_000)))

    assert result["resultCode"] == "TemporaryFailure"
    assert flow.chunks("notes/bees.txt") == []


def test_a_task_without_its_key_or_a_function_without_a_store_fails_permanently(make_flow: MakeFlow) -> None:
    flow = make_flow(events=(CREATED,))
    event = task_event(flow, "notes/bees.txt")
    del event["tasks"][0]["s3Key"]

    keyless = only_result(run(flow, event))
    storeless = only_result(
        BatchOperationTasks(None)(task_event(flow, "notes/bees.txt"), FakeLambdaContext())
    )

    assert keyless["resultCode"] == storeless["resultCode"] == "PermanentFailure"
    assert "s3Key" in keyless["resultString"]
    assert "DATABASE_URL" in storeless["resultString"]


def test_a_folder_marker_is_skipped_by_a_task_and_by_a_notification(make_flow: MakeFlow) -> None:
    """The S3 console's "Create folder" makes `reports/`, an empty object that S3 Inventory lists and
    S3 notifies: acknowledged, never a failure in the completion report or the dead-letter queue."""
    flow = make_flow(events=(CREATED,))
    flow.put("reports/", b"", content_type="application/x-directory")

    notified = flow.deliver()
    task = only_result(run(flow, task_event(flow, "reports/")))

    assert (notified.failed_ids, flow.documents()) == (set(), {})
    assert task == {
        "taskId": task["taskId"],
        "resultCode": "Succeeded",
        "resultString": "skipped: a folder marker, not a document",
    }
