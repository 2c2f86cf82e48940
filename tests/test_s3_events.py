"""S3 notification payloads, as S3 sends them directly, in SQS, or wrapped by SNS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from embedding_engine.errors import MalformedNotificationError
from embedding_engine.indexing.s3_events import object_events
from helpers import load_event


def notification() -> dict[str, Any]:
    [record] = load_event("sqs_s3_notification")["Records"]
    body: dict[str, Any] = json.loads(record["body"])
    return body


def test_keys_are_decoded_and_fields_read() -> None:
    [event] = object_events(notification())
    assert event.key == "incoming/résumé Zoé 2026.txt"
    assert event.source == f"s3://{event.bucket}/incoming/résumé Zoé 2026.txt"
    assert event.action == "created"
    assert event.sequencer and event.size and event.etag


def test_an_sns_envelope_is_unwrapped() -> None:
    """S3 -> SNS -> SQS fan-out: the SQS body is SNS's envelope around the S3 notification."""
    envelope = {"Type": "Notification", "MessageId": "1", "Message": json.dumps(notification())}
    assert object_events(envelope) == object_events(notification())


def test_removals_and_other_event_types() -> None:
    body = notification()
    body["Records"][0]["eventName"] = "ObjectRemoved:DeleteMarkerCreated"
    assert [event.action for event in object_events(body)] == ["removed"]
    body["Records"][0]["eventName"] = "ObjectRestore:Completed"
    assert object_events(body) == []


def test_without_a_sequencer_the_event_time_orders_events() -> None:
    [first] = object_events(timed("2026-11-25T10:00:00.000Z"))
    [second] = object_events(timed("2026-11-25T10:00:00.001Z"))
    assert int(first.sequencer, 16) < int(second.sequencer, 16)


def timed(event_time: str) -> dict[str, Any]:
    """The sample notification without a sequencer, at `event_time`."""
    body = notification()
    del body["Records"][0]["s3"]["object"]["sequencer"]
    body["Records"][0]["eventTime"] = event_time
    return body


def test_the_s3_test_event_is_acknowledged() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "docs", "RequestId": "1"}
    assert object_events(test_event) == []


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (["not", "an", "object"], "not a JSON object"),
        ({"detail-type": "Object Created", "source": "aws.s3"}, "no Records"),
        ({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}}]}, "lacks a field"),
        ({"Type": "Notification", "Message": "not json"}, "Expecting value"),
        (
            {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]},
            "lacks a field",
        ),
        (timed("noon"), "lacks a field: Invalid isoformat"),
    ],
    ids=["array", "eventbridge-shape", "record-without-fields", "sns-without-json", "no-key", "bad-time"],
)
def test_anything_else_is_refused(message: Any, fragment: str) -> None:
    """A `MalformedNotificationError` (a ValueError): the records route logs its message as it is."""
    with pytest.raises(MalformedNotificationError, match=fragment):
        object_events(message)
