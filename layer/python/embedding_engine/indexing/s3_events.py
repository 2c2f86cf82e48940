"""S3 event notifications (direct, or inside SQS message bodies) as typed object events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from embedding_engine.errors import MalformedNotificationError
from embedding_engine.observability import logger

TEST_EVENT = "s3:TestEvent"


@dataclass(frozen=True)
class ObjectEvent:
    """One object created or removed, with the key decoded and the event's ordering token."""

    bucket: str
    key: str
    action: Literal["created", "removed"]
    sequencer: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def object_events(notification: Any) -> list[ObjectEvent]:
    """The object events of an S3 notification, also inside an SNS envelope (S3 -> SNS -> SQS);
    `s3:TestEvent` and other event types give none. Raises `MalformedNotificationError` (a
    `ValueError`) for anything that is not an S3 notification, or a record without the fields every
    S3 object event carries; its message never quotes the notification."""
    if isinstance(notification, dict) and notification.get("Type") == "Notification":
        try:
            notification = json.loads(str(notification.get("Message", "")))
        except json.JSONDecodeError as error:
            raise MalformedNotificationError(
                f"the SNS envelope's Message is not an S3 notification ({error.msg})"
            ) from None
    if not isinstance(notification, dict):
        raise MalformedNotificationError("the message is not an S3 notification (not a JSON object)")
    if notification.get("Event") == TEST_EVENT:
        logger.info("s3 test event acknowledged", extra={"bucket": notification.get("Bucket")})
        return []
    if not isinstance(notification.get("Records"), list):
        raise MalformedNotificationError("the message is not an S3 notification (no Records)")
    events = []
    for record in notification["Records"]:
        name = str(record.get("eventName", ""))
        if name.startswith("ObjectCreated:"):
            action: Literal["created", "removed"] = "created"
        elif name.startswith("ObjectRemoved:"):
            action = "removed"
        else:
            logger.info("s3 event ignored", extra={"event_name": name})
            continue
        try:
            s3 = record["s3"]
            obj = s3["object"]
            events.append(
                ObjectEvent(
                    bucket=s3["bucket"]["name"],
                    # Keys arrive URL-encoded, with "+" for spaces.
                    key=unquote_plus(obj["key"]),
                    action=action,
                    sequencer=obj.get("sequencer") or _sequencer_from_time(record["eventTime"]),
                    size=int(obj["size"]) if obj.get("size") is not None else None,
                    etag=obj.get("eTag"),
                    version_id=obj.get("versionId") or None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: a size or time that is not one
            raise MalformedNotificationError(f"S3 record {name!r} lacks a field: {exc}") from None
    return events


def _sequencer_from_time(event_time: str) -> str:
    """S3 puts a `sequencer` on every object event; some S3-compatible stores and emulators do not.
    Their events are ordered by `eventTime` instead (microseconds, as hex, like a sequencer)."""
    moment = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    return f"{int(moment.timestamp() * 1_000_000):x}"
