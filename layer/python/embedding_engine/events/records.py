"""S3 notifications and SQS messages: the document-indexing entry."""

from __future__ import annotations

from typing import Any

from embedding_engine.errors import UnsupportedEventError

RECORD_SOURCES = frozenset({"aws:sqs", "aws:s3"})


class DocumentRecords:
    def infer(self, event: Any) -> bool:
        records = event.get("Records") if isinstance(event, dict) else None
        return (
            isinstance(records, list)
            and bool(records)
            and isinstance(records[0], dict)
            and records[0].get("eventSource") in RECORD_SOURCES
        )

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        source = event["Records"][0]["eventSource"]
        raise UnsupportedEventError(
            f"Received {len(event['Records'])} {source} record(s), but document indexing is not "
            "part of this build yet: detach the S3/SQS trigger from this function until it is."
        )
