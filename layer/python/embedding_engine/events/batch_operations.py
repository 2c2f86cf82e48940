"""S3 Batch Operations tasks (invocation schemas 1.0 and 2.0): backfill and reindex, one object each.

A task carries no S3 `sequencer`, so it is applied as the oldest possible event (`BACKFILL_SEQUENCER`):
it indexes a document nothing has indexed yet, and changes nothing where a notification (or an earlier
task) already applied the object. A newer notification always overrides what a task wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import (
    S3BatchOperationEvent,
    S3BatchOperationResponseRecord,
    S3BatchOperationTask,
)

from embedding_engine.errors import (
    DeadlineExceededError,
    DocumentError,
    MalformedNotificationError,
    StoreUnavailableError,
)
from embedding_engine.events.records import failure_reason, invocation_deadline, log_failure
from embedding_engine.indexing.s3_events import ObjectEvent
from embedding_engine.observability import metrics

if TYPE_CHECKING:
    from embedding_engine.deadline import Deadline
    from embedding_engine.indexing.pipeline import Indexer, IndexOutcome

SCHEMA_VERSIONS = frozenset({"1.0", "2.0"})
# Lower than any S3 sequencer: a task only fills a document no event has been applied to.
BACKFILL_SEQUENCER = "0"
# S3 errors worth another try by Batch Operations (its TemporaryFailure); any other is permanent.
RETRYABLE_S3_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "503", "500"}
)
ResultCode = Literal["Succeeded", "TemporaryFailure", "PermanentFailure"]


class BatchOperationTasks:
    """The route for S3 Batch Operations' `LambdaInvoke` jobs (see `python -m embedding_engine backfill`)."""

    def __init__(self, indexer: Indexer | None) -> None:
        self.indexer = indexer

    def infer(self, event: Any) -> bool:
        return (
            isinstance(event, dict)
            and event.get("invocationSchemaVersion") in SCHEMA_VERSIONS
            and isinstance(event.get("tasks"), list)
        )

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """One result per task, in the response shape Batch Operations reads: Succeeded (indexed,
        already indexed, or skipped with the reason), TemporaryFailure (the database, the deadline or
        S3 throttling: Batch Operations retries), PermanentFailure (a document that cannot be read, a
        task without its object); the completion report keeps each result's string."""
        batch = S3BatchOperationEvent(event)
        deadline = invocation_deadline(context)
        results = [self._run(task, deadline) for task in batch.tasks]
        return {
            "invocationSchemaVersion": batch.invocation_schema_version,
            # A task missing from `results` failed: it must not be reported as done.
            "treatMissingKeysAs": "PermanentFailure",
            "invocationId": batch.invocation_id,
            "results": [result.asdict() for result in results],
        }

    def _run(self, task: S3BatchOperationTask, deadline: Deadline) -> S3BatchOperationResponseRecord:
        source = None
        try:
            object_event = task_object(task)
            source = object_event.source
            if self.indexer is None:  # a retry cannot help: the job targets a function with no store
                raise StoreUnavailableError.not_configured(
                    otherwise="or point the job at the indexing function"
                )
            outcome = self.indexer.handle(object_event, deadline=deadline)
        except Exception as error:  # noqa: BLE001  (each task's error is its own result, logged)
            code = "PermanentFailure" if self.indexer is None else result_code(error)
            log_failure(error, task_id=task.get("taskId"), source=source)
            metrics.add_metric(name="BatchOperationTasksFailed", unit=MetricUnit.Count, value=1)
            return record(task, code, f"{code}: {failure_reason(error)}")
        metrics.add_metric(name="BatchOperationTasksSucceeded", unit=MetricUnit.Count, value=1)
        return record(task, "Succeeded", describe(outcome))


def task_object(task: S3BatchOperationTask) -> ObjectEvent:
    """The object a task names (its key URL-decoded, as in the CSV manifest), as a creation event
    ordered before any notification. Raises `MalformedNotificationError` for a task without them."""
    try:
        bucket, key = task.s3_bucket, task.s3_key
    except (KeyError, TypeError, AttributeError):
        raise MalformedNotificationError(
            f"S3 Batch Operations task {task.get('taskId')!r} lacks s3Key, or s3Bucket (schema 2.0) or "
            "s3BucketArn (1.0)."
        ) from None
    return ObjectEvent(
        bucket=bucket,
        key=key,
        action="created",
        sequencer=BACKFILL_SEQUENCER,
        version_id=task.s3_version_id or None,
    )


def result_code(error: Exception) -> ResultCode:
    """TemporaryFailure for what a retry can fix; PermanentFailure for the document or the task."""
    if isinstance(error, (StoreUnavailableError, DeadlineExceededError)):
        return "TemporaryFailure"
    if isinstance(error, DocumentError):
        return "PermanentFailure"
    response = getattr(error, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return "TemporaryFailure" if code in RETRYABLE_S3_CODES else "PermanentFailure"
    if isinstance(error, MalformedNotificationError):  # a task without its object
        return "PermanentFailure"
    return "TemporaryFailure"


def describe(outcome: IndexOutcome) -> str:
    """The completion report's line for a task that succeeded (names and counts, never text)."""
    if outcome.action == "indexed":
        return f"indexed: {outcome.chunks} chunks"
    if outcome.action == "stale":
        return "unchanged: a notification or an earlier task already applied this object"
    return f"{outcome.action}: {outcome.reason or ''}".rstrip(": ")


def record(task: S3BatchOperationTask, code: ResultCode, text: str) -> S3BatchOperationResponseRecord:
    return S3BatchOperationResponseRecord(
        task_id=str(task.get("taskId")), result_code=code, result_string=text
    )
