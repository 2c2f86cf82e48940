"""S3 notifications, through SQS or direct: the document-indexing entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
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
# database writes of the documents just embedded) and for the reply. A tenth of the time left, within
# these bounds.
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
class _Record:
    """One message's work: what its object events came to (None while a document awaits its vectors),
    or the first error that failed it, and the object that error is about."""

    outcomes: list[IndexOutcome | None] = field(default_factory=list)
    error: Exception | None = None
    source: str | None = None

    def report(self, *, message_id: str | None) -> list[IndexOutcome]:
        """The outcomes, in event order; a failure is logged, then raised."""
        if self.error is not None:
            log_failure(self.error, message_id=message_id, source=self.source)
            raise self.error
        return [outcome for outcome in self.outcomes if outcome is not None]


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

    def run(self, indexer: Indexer, notifications: Sequence[Callable[[], Any]]) -> list[_Record]:
        """Apply the object events of each notification (a callable reading it): every record's
        documents prepared first, each failure kept with its record, then all the prepared documents
        embedded together (a few encoder batches at a time) and each stored in its own transaction."""
        from embedding_engine.indexing.batch import index_documents
        from embedding_engine.indexing.pipeline import PreparedDocument

        records = [_Record() for _ in notifications]
        waiting: list[tuple[_Record, int, PreparedDocument]] = []
        for record, read in zip(records, notifications, strict=True):
            source = None
            try:
                for object_event in object_events(read()):
                    source = object_event.source
                    self.check()
                    prepared = indexer.prepare(object_event, deadline=self.deadline)
                    if isinstance(prepared, PreparedDocument):
                        waiting.append((record, len(record.outcomes), prepared))
                        record.outcomes.append(None)
                    else:
                        record.outcomes.append(prepared)
            except Exception as error:  # noqa: BLE001  (the record's: logged and raised when reported)
                self._fail(record, error, source)
        results = index_documents(indexer, [document for *_, document in waiting], deadline=self.deadline)
        for (record, position, _), (document, result) in zip(waiting, results, strict=True):
            if isinstance(result, Exception):
                self._fail(record, result, document.source)
            else:
                record.outcomes[position] = result
        return records

    def _fail(self, record: _Record, error: Exception, source: str | None) -> None:
        if isinstance(error, DeadlineExceededError):
            self.stopped = True  # a record ran out of time: the rest are not started
        if record.error is None:
            record.error, record.source = error, source


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
        fails its batch-mates, a database outage fails the messages that need it so SQS retries them,
        and once the invocation's deadline is near, the records not embedded in time and those not
        started are reported failed instead of the invocation timing out. The batch's documents are
        embedded together, then each stored alone. Each failure is logged. A direct S3 invocation
        raises on failure, so Lambda's async retries apply."""
        indexer = self._indexer()
        batch = _Batch(invocation_deadline(context))
        if event["Records"][0]["eventSource"] == "aws:sqs":
            messages = [SQSRecord(record) for record in event["Records"]]
            done = batch.run(indexer, [partial(_notification, message) for message in messages])
            by_id = {message.message_id: record for message, record in zip(messages, done, strict=True)}
            # Every record failing is reported like any other failure, not raised as one error.
            processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
            response = process_partial_response(
                event=event,
                record_handler=lambda record: by_id[record.message_id].report(message_id=record.message_id),
                processor=processor,
                context=context,
            )
            return dict(response)
        [record] = batch.run(indexer, [lambda: event])
        outcomes = record.report(message_id=None)
        return {"outcomes": [{"source": o.source, "action": o.action, "chunks": o.chunks} for o in outcomes]}

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


def log_failure(error: Exception, *, source: str | None, **record_id: str | None) -> None:
    """One log line per failed record: its id (`message_id=`, `task_id=`), the object, the error's
    type and a reason that cannot hold document text. Documents and messages at fault are warnings;
    the rest errors."""
    at_fault = isinstance(error, (DocumentError, MalformedNotificationError, DeadlineExceededError))
    log = logger.warning if at_fault else logger.error
    log(
        "record failed",
        extra={
            **record_id,
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
