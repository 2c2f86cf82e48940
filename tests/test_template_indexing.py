"""The SAM template's indexing side and its guards: bucket, queue, dead-letter queue, least-privilege
policies, VPC, outputs and parameters."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from cfn import (
    FUNCTIONS,
    NO_VALUE,
    PSEUDO,
    ROOT,
    default,
    evaluate,
    events,
    number,
    properties,
    resource,
    resources_of_type,
    template,
    walk,
)


def test_the_queue_feeds_the_indexing_alias_with_partial_batch_failures() -> None:
    [mapping] = resources_of_type("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Ref": "IndexingFunction.Alias"}
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["DocumentsQueue", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IndexingMaxConcurrency"}}
    assert number("IndexingMaxConcurrency", "MinValue") >= 2  # SQS's minimum
    # Batch Operations invokes the alias directly: only reserved concurrency caps it, when asked for.
    reserved = template()["Resources"]["IndexingFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {
        "Fn::If": [
            "HasIndexingReservedConcurrency",
            {"Ref": "IndexingReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template()["Conditions"]["HasIndexingReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "IndexingReservedConcurrency"}, 0]}]
    }
    assert props["BatchSize"] == {"Ref": "IndexingBatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == {"Ref": "IndexingBatchingWindow"}
    # Over 10 messages per batch Lambda requires a batching window; the parameter stays within 10.
    assert number("IndexingBatchSize", "MaxValue") <= 10
    assert props["Enabled"] == {"Fn::If": ["HasStore", True, False]}
    # No SAM `SQS` event: it would attach AWSLambdaSQSQueueExecutionRole (every queue) to the role.
    assert not events("IndexingFunction", "SQS")
    assert {"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["DocumentsQueue", "QueueName"]}}} in (
        properties("IndexingFunction")["Policies"]
    )
    assert not any(events(name, kind) for name in FUNCTIONS for kind in ("SQS", "S3"))


def test_the_visibility_timeout_covers_six_indexing_timeouts() -> None:
    assert properties("IndexingFunction")["Timeout"] == {"Ref": "IndexingTimeout"}
    assert properties("DocumentsQueue")["VisibilityTimeout"] == {"Ref": "QueueVisibilityTimeout"}
    required = 6 * number("IndexingTimeout") + number("IndexingBatchingWindow")
    assert number("QueueVisibilityTimeout") >= required
    assert number("QueueVisibilityTimeout", "MaxValue") >= 6 * number("IndexingTimeout", "MaxValue")
    assert number("IndexingTimeout") > number("ApiTimeout")


def test_failing_messages_end_in_the_dead_letter_queue() -> None:
    queue = properties("DocumentsQueue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DocumentsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert default("MaxReceiveCount") == 3
    # A standard queue's message keeps its first enqueue time when it moves to the dead-letter queue.
    assert properties("DocumentsDeadLetterQueue")["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    # S3 event notifications can reach 64 KB (SQS allows 256 KB).
    assert 65536 <= queue["MaximumMessageSize"] <= 262144
    for name in ("DocumentsQueue", "DocumentsDeadLetterQueue"):
        assert properties(name)["SqsManagedSseEnabled"] is True


def test_bucket_notifications_reach_the_queue_only_from_that_bucket() -> None:
    bucket = resource("DocumentsBucket")
    queue_arn = {"Fn::GetAtt": ["DocumentsQueue", "Arn"]}
    configurations = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert {c["Event"] for c in configurations} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    assert all(c["Queue"] == queue_arn for c in configurations)
    # S3 checks the destination's policy when it writes the notification configuration.
    assert bucket["DependsOn"] == "DocumentsQueuePolicy"

    policy = properties("DocumentsQueuePolicy")
    assert policy["Queues"] == [{"Ref": "DocumentsQueue"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == queue_arn
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # Scoped to the bucket's ARN, built from the bucket's name without referring to the bucket.
    assert "DocumentsBucket" not in json.dumps(policy)
    bucket_name = evaluate(bucket["Properties"]["BucketName"])
    assert evaluate(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == f"arn:aws:s3:::{bucket_name}"
    # A valid bucket name even for a stack name with capitals and a long region.
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket_name), bucket_name
    assert PSEUDO["AWS::Region"] in bucket_name and PSEUDO["AWS::StackId"].endswith(bucket_name[-12:])


def test_the_bucket_is_private_and_encrypted() -> None:
    bucket = properties("DocumentsBucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["VersioningConfiguration"] == {
        "Fn::If": ["VersioningEnabled", {"Status": "Enabled"}, NO_VALUE]
    }
    assert resource("DocumentsBucket")["DeletionPolicy"] == "Retain"
    assert {"S3ReadPolicy": {"BucketName": {"Ref": "DocumentsBucket"}}} in properties("IndexingFunction")[
        "Policies"
    ]


def inline_policies() -> Iterator[tuple[str, Any]]:
    """Every identity policy the template writes itself: the functions' Policies and IAM resources."""
    for name in FUNCTIONS:
        for policy in properties(name).get("Policies", []):
            yield name, policy
    for kind in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
        for name, body in resources_of_type(kind).items():
            yield name, body["Properties"]["PolicyDocument"]
    for name, body in resources_of_type("AWS::IAM::Role").items():
        for policy in body["Properties"].get("Policies", []):
            yield name, policy["PolicyDocument"]


def test_no_inline_policy_grants_a_wildcard_resource() -> None:
    policies = list(inline_policies())
    assert policies
    for owner, policy in policies:
        for node in walk(policy):
            if isinstance(node, dict):
                for key in ("Resource", "BucketName", "QueueName", "SecretArn", "FunctionName"):
                    values = node.get(key, [])
                    assert "*" not in (values if isinstance(values, list) else [values]), owner
        # Policy templates or statements only; no managed policy names smuggled in as strings.
        assert not isinstance(policy, str), owner


@pytest.mark.parametrize(("function", "count"), [("ApiFunction", 2), ("IndexingFunction", 1)])
def test_secrets_are_readable_only_when_configured(function: str, count: int) -> None:
    conditional = [
        policy
        for policy in properties(function)["Policies"]
        if isinstance(policy, dict) and "Fn::If" in policy
    ]
    assert len(conditional) == count
    for policy in conditional:
        condition, granted, otherwise = policy["Fn::If"]
        parameter = {"HasApiKeysSecret": "ApiKeysSecretArn", "HasDatabaseSecret": "DatabaseSecretArn"}[
            condition
        ]
        assert granted == {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": parameter}}}
        assert otherwise == NO_VALUE


def test_vpc_config_only_when_subnets_are_given() -> None:
    vpc = template()["Globals"]["Function"]["VpcConfig"]
    assert vpc == {
        "Fn::If": [
            "HasVpc",
            {"SubnetIds": {"Ref": "VpcSubnetIds"}, "SecurityGroupIds": {"Ref": "VpcSecurityGroupIds"}},
            NO_VALUE,
        ]
    }
    assert template()["Conditions"]["HasVpc"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "VpcSubnetIds"}]}, ""]}]
    }
    for parameter in ("VpcSubnetIds", "VpcSecurityGroupIds"):
        assert template()["Parameters"][parameter]["Type"] == "CommaDelimitedList"
        assert default(parameter) == ""


def test_memory_buys_cpus_for_inference() -> None:
    for parameter in ("ApiMemorySize", "IndexingMemorySize"):
        assert number(parameter) >= 1769  # at least one full vCPU
        assert number(parameter, "MaxValue") <= 10240
    assert template()["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]
    assert default("Architecture") == "x86_64"  # what the Dockerfile's CPU torch build targets
    assert template()["Globals"]["Function"]["Tracing"] == "Active"


def test_outputs_name_the_api_bucket_and_queues() -> None:
    outputs = template()["Outputs"]
    assert {"ApiUrl", "DocumentsBucketName", "DocumentsQueueUrl", "DeadLetterQueueUrl"} <= set(outputs)
    assert "${HttpApi}" in outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["DocumentsBucketName"]["Value"] == {"Ref": "DocumentsBucket"}
    assert outputs["DocumentsQueueUrl"]["Value"] == {"Ref": "DocumentsQueue"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "DocumentsDeadLetterQueue"}


def test_samconfig_deploys_with_iam_and_an_image_repository() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_image_repos"] is True
    assert config["default"]["build"]["parameters"]["use_buildkit"] is True
    assert re.fullmatch(r"[a-z][a-z0-9-]*", config["default"]["global"]["parameters"]["stack_name"])


def test_every_parameter_is_used() -> None:
    """cfn-lint does not report unused parameters in a SAM template (before the transform)."""
    body = json.dumps({key: value for key, value in template().items() if key != "Parameters"})
    for parameter in template()["Parameters"]:
        assert json.dumps({"Ref": parameter}) in body or f"${{{parameter}}}" in body, parameter
