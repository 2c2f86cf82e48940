"""S3 notifications, through SQS or direct: the document-indexing entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from embedding_engine.deadline import Deadline
from embedding_engine.errors import (
    DeadlineExceededError,
    DocumentError,
    MalformedNotificationError,
    ObjectSkippedError,
    ServiceError,
    StoreUnavailableError,
)
from embedding_engine.indexing.s3_events import object_events
from embedding_engine.observability import logger

if TYPE_CHECKING:
    from embedding_engine.indexing.pipeline import Indexer, IndexOutcome

RECORD_SOURCES = frozenset({"aws:sqs", "aws:s3"})
# Kept from the invocation's remaining time: for the step under way when the deadline passes (one
# PDF page, chunking up to MAX_DOCUMENT_CHARS: about 3 s for 2,000,000 characters on this CPU, the
# database write) and for the reply. A tenth of the time left, within these bounds.
RESERVE_FRACTION = 0.1
MIN_RESERVE_SECONDS = 5.0
MAX_RESERVE_SECONDS = 15.0
# Our own errors: their messages name keys, types and sizes, never document text.
_OWN_ERRORS = (DocumentError, ObjectSkippedError, ServiceError, MalformedNotificationError)


def invocation_deadline(context: Any) -> Deadline:
    """When to stop starting work: Lambda's deadline less the reserve (never, without a context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return Deadline.never()
    reserve = min(max(remaining() / 1000 * RESERVE_FRACTION, MIN_RESERVE_SECONDS), MAX_RESERVE_SECONDS)
    return Deadline.of_invocation(context, reserve_seconds=reserve)


@dataclass
class _Batch:
    """One invocation's records: its deadline, and whether the work has stopped for it."""

    deadline: Deadline
    stopped: bool = False

    def check(self) -> None:
        """Raises `DeadlineExceededError` once the deadline has passed or a record ran out of time:
        what is left is reported failed, for SQS to redeliver, without being started."""
        if not self.stopped and self.deadline.remaining() > 0:
            return
        self.stopped = True
        raise DeadlineExceededError("Not started: the invocation's deadline is near; SQS will redeliver it.")


class DocumentRecords:
    def __init__(self, indexer: Indexer | None) -> None:
        self.indexer = indexer

    def infer(self, event: Any) -> bool:
        records = event.get("Records") if isinstance(event, dict) else None
        return (
            isinstance(records, list)
            and bool(records)
            and isinstance(records[0], dict)
            and records[0].get("eventSource") in RECORD_SOURCES
        )

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """SQS batches report per-message failures (`batchItemFailures`): one bad document never
        fails its batch-mates, a database outage fails every message so SQS retries them, and once
        the invocation's deadline is near, the record under way and those not started are reported
        failed instead of the invocation timing out. Each failure is logged. A direct S3 invocation
        raises on failure, so Lambda's async retries apply."""
        indexer = self._indexer()
        batch = _Batch(invocation_deadline(context))
        if event["Records"][0]["eventSource"] == "aws:sqs":
            # Every record failing is reported like any other failure, not raised as one error.
            processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
            response = process_partial_response(
                event=event,
                record_handler=lambda record: self._index(
                    lambda: _notification(record), indexer, batch, message_id=record.message_id
                ),
                processor=processor,
                context=context,
            )
            return dict(response)
        outcomes = self._index(lambda: event, indexer, batch, message_id=None)
        return {"outcomes": [{"source": o.source, "action": o.action, "chunks": o.chunks} for o in outcomes]}

    def _index(
        self, read: Callable[[], Any], indexer: Indexer, batch: _Batch, *, message_id: str | None
    ) -> list[IndexOutcome]:
        """Apply the object events of the notification `read` gives; a failure is logged, then raised."""
        outcomes, source = [], None
        try:
            for object_event in object_events(read()):
                source = object_event.source
                batch.check()
                outcomes.append(indexer.handle(object_event, deadline=batch.deadline))
        except Exception as error:
            if isinstance(error, DeadlineExceededError):
                batch.stopped = True  # a record ran out of time: the rest are not started
            log_failure(error, message_id=message_id, source=source)
            raise
        return outcomes

    def _indexer(self) -> Indexer:
        if self.indexer is None:
            raise StoreUnavailableError.not_configured(otherwise="or detach the S3/SQS trigger")
        return self.indexer


def _notification(record: SQSRecord) -> Any:
    try:
        return json.loads(record.body)
    except json.JSONDecodeError:
        raise MalformedNotificationError(
            f"SQS message {record.message_id} is not an S3 notification (not JSON)."
        ) from None


def log_failure(error: Exception, *, message_id: str | None, source: str | None) -> None:
    """One log line per failed record: the message, the object, the error's type and a reason that
    cannot hold document text. Documents and messages at fault are warnings; the rest errors."""
    at_fault = isinstance(error, (DocumentError, MalformedNotificationError, DeadlineExceededError))
    log = logger.warning if at_fault else logger.error
    log(
        "record failed",
        extra={
            "message_id": message_id,
            "source": source,
            "error_type": type(error).__name__,
            "reason": failure_reason(error),
        },
    )


def failure_reason(error: Exception) -> str:
    """Our own errors' messages (they name keys and types only); for anything else, its type and a
    code: PostgreSQL's SQLSTATE, AWS's error code. A foreign message may quote the document."""
    if isinstance(error, _OWN_ERRORS):
        return str(error)
    name = type(error).__name__
    sqlstate = getattr(error, "sqlstate", None)  # psycopg
    if sqlstate:
        return f"{name} (sqlstate {sqlstate})"
    response = getattr(error, "response", None)  # botocore's ClientError
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return f"{name} (code {code})" if code else name
