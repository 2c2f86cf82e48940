"""Reading S3 objects with a size cap (boto3 honours AWS_ENDPOINT_URL, which is how tests use moto)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedding_engine.errors import ObjectSkippedError
from embedding_engine.indexing.s3_events import ObjectEvent

MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})


@dataclass(frozen=True)
class FetchedObject:
    data: bytes
    content_type: str | None
    version: str | None


class S3Fetcher:
    """Reads objects for indexing; one boto3 client per container, created on first use."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._client: Any = None

    def fetch(self, event: ObjectEvent) -> FetchedObject:
        """The object's bytes. Raises `ObjectSkippedError` when it is over the cap or gone."""
        if event.size is not None and event.size > self.max_bytes:
            raise self._too_large(event, event.size)
        from botocore.exceptions import ClientError

        request: dict[str, Any] = {"Bucket": event.bucket, "Key": event.key}
        if event.version_id:
            request["VersionId"] = event.version_id
        try:
            response = self._s3().get_object(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING_CODES:
                raise ObjectSkippedError(f"{event.source} no longer exists ({code}).") from None
            raise
        body = response["Body"]
        try:
            if int(response.get("ContentLength", 0)) > self.max_bytes:
                raise self._too_large(event, int(response["ContentLength"]))
            data = body.read(self.max_bytes + 1)
        finally:
            body.close()
        if len(data) > self.max_bytes:
            raise self._too_large(event, len(data))
        version = response.get("VersionId") or response.get("ETag", "").strip('"') or None
        return FetchedObject(data=data, content_type=response.get("ContentType"), version=version)

    def _too_large(self, event: ObjectEvent, size: int) -> ObjectSkippedError:
        return ObjectSkippedError(
            f"{event.source} is {size} bytes, over MAX_DOCUMENT_BYTES={self.max_bytes}; not indexed."
        )

    def _s3(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client
