"""S3 notifications, through SQS or direct: the document-indexing entry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from embedding_engine.errors import StoreUnavailableError
from embedding_engine.indexing.s3_events import object_events

if TYPE_CHECKING:
    from embedding_engine.indexing.pipeline import Indexer

RECORD_SOURCES = frozenset({"aws:sqs", "aws:s3"})


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
        fails its batch-mates, and a database outage fails every message so SQS retries them.
        A direct S3 invocation raises on failure, so Lambda's async retries apply."""
        indexer = self._indexer()
        if event["Records"][0]["eventSource"] == "aws:sqs":
            # Every record failing is reported like any other failure, not raised as one error.
            processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
            response = process_partial_response(
                event=event, record_handler=self._sqs_record, processor=processor, context=context
            )
            return dict(response)
        outcomes = [indexer.handle(object_event) for object_event in object_events(event)]
        return {"outcomes": [{"source": o.source, "action": o.action, "chunks": o.chunks} for o in outcomes]}

    def _sqs_record(self, record: SQSRecord) -> None:
        indexer = self._indexer()
        try:
            notification = json.loads(record.body)
        except json.JSONDecodeError:
            raise ValueError(
                f"SQS message {record.message_id} is not an S3 notification (not JSON)."
            ) from None
        for object_event in object_events(notification):
            indexer.handle(object_event)

    def _indexer(self) -> Indexer:
        if self.indexer is None:
            raise StoreUnavailableError(
                "S3/SQS records arrived but no document store is configured: set DATABASE_URL or "
                "DATABASE_SECRET_ARN, or detach the trigger."
            )
        return self.indexer
