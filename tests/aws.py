"""AWS without an account: moto's server for S3 and SQS, and Lambda's SQS event source mapping.

One moto server per session: a boto3 client keeps the endpoint it was created with, and the warm
engine creates its S3 client on its first fetch. moto delivers real S3 notifications into SQS (with
no `sequencer`: the indexer falls back to `eventTime`) and an `s3:TestEvent` once they are configured.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal
from urllib.parse import quote_plus, unquote_plus

import boto3
import pytest

from helpers import FakeLambdaContext, load_event

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 2
CREATED = "s3:ObjectCreated:*"
REMOVED = "s3:ObjectRemoved:*"
# What Lambda hands a function: (event, context) -> response.
Handler = Callable[[Any, Any], Any]
_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Variables that would send boto3 elsewhere: removed while the server runs, restored afterwards.
_OVERRIDES = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS")


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str
    dead_letter_url: str


@dataclass
class Aws:
    """Clients of the session's moto server, and builders of uniquely named buckets and queues."""

    endpoint: str
    s3: Any
    sqs: Any
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def name(self, prefix: str) -> str:
        return f"{prefix}-{next(self._serial)}"

    def queue(self, prefix: str = "documents") -> Queue:
        """A queue whose messages move to its dead-letter queue after `MAX_RECEIVE_COUNT` receives."""
        name = self.name(prefix)
        dead_letter_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        policy = {"deadLetterTargetArn": self.arn(dead_letter_url), "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        url = self.sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})[
            "QueueUrl"
        ]
        return Queue(url=url, arn=self.arn(url), dead_letter_url=dead_letter_url)

    def arn(self, queue_url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def bucket(
        self, queue: Queue | None = None, *, events: tuple[str, ...] = (CREATED,), test_event: bool = False
    ) -> str:
        """A bucket, notifying `queue` (if any) of `events` (if any). S3 then sends an `s3:TestEvent` to
        the queue: dropped unless `test_event`, so that a test's batches hold only its own objects."""
        bucket = self.name("documents")
        self.s3.create_bucket(Bucket=bucket)
        if queue is not None and events:
            configuration = {"Id": "index-new-documents", "QueueArn": queue.arn, "Events": list(events)}
            self.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [configuration]}
            )
            if not test_event:
                self.sqs.purge_queue(QueueUrl=queue.url)
        return bucket


@dataclass
class Pipeline:
    """A bucket whose S3 notifications go to a queue (with its dead-letter queue), and the function
    that the queue's event source mapping invokes."""

    aws: Aws
    bucket: str
    queue: Queue
    handler: Handler

    def source(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes, content_type: str | None = None) -> int:
        """Upload an object (S3 notifies the queue, if configured to); its size."""
        extra = {"ContentType": content_type} if content_type else {}
        self.aws.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        return len(data)

    def notify(self, key: str, action: Literal["created", "removed"], sequencer: str, size: int = 0) -> None:
        """Send the queue an S3 notification with an explicit sequencer, as S3 itself would."""
        notification = s3_notification(self.bucket, key, action=action, sequencer=sequencer, size=size)
        self.aws.sqs.send_message(QueueUrl=self.queue.url, MessageBody=json.dumps(notification))

    def deliver(self, handler: Handler | None = None) -> Delivery:
        """One invocation by the event source mapping (see `deliver`), of `handler` if given."""
        return deliver(self.queue.url, handler or self.handler, FakeLambdaContext())

    def waiting(self) -> int:
        """Messages in the queue, visible or in flight."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.aws.sqs.get_queue_attributes(QueueUrl=self.queue.url, AttributeNames=names)
        return sum(int(attributes["Attributes"][name]) for name in names)

    def dead_letter_keys(self) -> list[str]:
        """The object keys of the messages in the dead-letter queue (received, and left there)."""
        response = self.aws.sqs.receive_message(
            QueueUrl=self.queue.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [key for message in response.get("Messages", []) for key in object_keys(message["Body"])]


@pytest.fixture(scope="session", name="aws")
def aws_fixture() -> Iterator[Aws]:
    """moto's server on 127.0.0.1 (a free port), and the environment boto3 reads pointed at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {name: os.environ.get(name) for name in (*_ENVIRONMENT, *_OVERRIDES, "AWS_ENDPOINT_URL")}
    for name in _OVERRIDES:
        os.environ.pop(name, None)
    os.environ.update(_ENVIRONMENT, AWS_ENDPOINT_URL=endpoint)
    try:
        yield Aws(endpoint=endpoint, s3=boto3.client("s3"), sqs=boto3.client("sqs"))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def object_keys(body: str) -> list[str]:
    """The decoded object keys an SQS message body (an S3 notification) names."""
    notification = json.loads(body)
    return [unquote_plus(record["s3"]["object"]["key"]) for record in notification.get("Records", [])]


def s3_notification(
    bucket: str,
    key: str,
    *,
    action: Literal["created", "removed"],
    sequencer: str,
    size: int | None = None,
) -> dict[str, Any]:
    """A real S3 notification (tests/events/s3_put.json or s3_delete.json) for `bucket`/`key`,
    with an explicit sequencer: what ordering tests need, and moto's notifications lack."""
    notification = load_event("s3_put" if action == "created" else "s3_delete")
    [record] = notification["Records"]
    record["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["s3"]["object"].update(key=quote_plus(key, safe="/"), sequencer=sequencer)
    if size is not None:
        record["s3"]["object"]["size"] = size
    return notification


@dataclass(frozen=True)
class Delivery:
    """One invocation by the event source mapping: the event the function got, and its response."""

    event: dict[str, Any]
    response: Any

    @property
    def failed_ids(self) -> set[str]:
        failures = self.response.get("batchItemFailures", []) if isinstance(self.response, dict) else []
        return {str(failure["itemIdentifier"]) for failure in failures}

    @property
    def failed_keys(self) -> set[str]:
        """The object keys of the messages reported as failed."""
        return {
            key
            for record in self.event["Records"]
            if record["messageId"] in self.failed_ids
            for key in object_keys(record["body"])
        }


@cache
def _sqs(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint)


def deliver(queue_url: str, handler: Handler, context: Any) -> Delivery:
    """What Lambda's SQS event source mapping (ReportBatchItemFailures on) does once: receive up to
    10 messages, invoke `handler` with them, and delete those not listed in `batchItemFailures`.
    The failed ones are visible again at once (VisibilityTimeout=0) and count towards the redrive
    policy. With no message, the function is not invoked (`response` is None). If the handler
    raises, or names a message not in the batch, the whole batch stays in the queue."""
    sqs = _sqs(os.environ["AWS_ENDPOINT_URL"])
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not messages:
        return Delivery(event={"Records": []}, response=None)
    source_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    event = {"Records": [_record(message, source_arn["Attributes"]["QueueArn"]) for message in messages]}
    delivery = Delivery(event=event, response=handler(event, context))
    batch = {message["MessageId"] for message in messages}
    if not delivery.failed_ids <= batch:
        return delivery  # an invalid response: Lambda counts the whole batch as failed
    done = [message for message in messages if message["MessageId"] not in delivery.failed_ids]
    if done:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
        result = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not result.get("Failed"), result["Failed"]
    return delivery


def _record(message: dict[str, Any], source_arn: str) -> dict[str, Any]:
    """An SQS message as the event source mapping hands it to the function."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": source_arn.split(":")[3],
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS's `{"StringValue", "DataType"...}` in Lambda's camelCase, binary values in base64."""
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute
