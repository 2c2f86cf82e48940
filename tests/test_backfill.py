"""`python -m embedding_engine backfill`: the manifest against moto's S3 server, the stack's outputs
from moto's CloudFormation, and the S3 Batch Operations calls through botocore's Stubber on a real
s3control client. moto 5.2.5 has no Batch Operations jobs (CreateJob, DescribeJob and ListJobs answer
404 in server and decorator mode), so those requests are checked against botocore's API model and
the exact parameters our code builds, and the progress loop runs over scripted DescribeJob answers."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus

import boto3
import pytest
from botocore.stub import ANY, Stubber

from aws import REGION, Aws
from embedding_engine import backfill, backfill_job
from embedding_engine.backfill import execute
from embedding_engine.backfill_job import Clients
from embedding_engine.backfill_manifest import (
    CSV_FORMAT,
    INVENTORY_FORMAT,
    S3Url,
    listed_manifest,
    write_manifest,
)
from embedding_engine.backfill_progress import ProgressLine, Watcher
from runtime_api import LAYER_DIR, inherited_environment

ACCOUNT = "123456789012"  # moto's STS answers with its default account
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:embeddings-IndexingFunction-abc:live"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/embeddings-BatchOperationsRole-abc"
JOB_ID = "8f0a5a34-7e0e-4bd6-9a4f-1c2d3e4f5a6b"
AWKWARD_KEYS = [
    "docs/plain.txt",
    "docs/with space  and two.md",
    "docs/a+b=c&d.txt",
    "docs/naïve/日本語 ファイル.pdf",
    "docs/deep/nested/path/page.html",
    'docs/comma,quote"percent%41.txt',
    "docs/tilde~hash#question?.txt",
]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backfill.add_arguments(parser)
    return parser.parse_args(argv)


def explicit(source: str, operations_bucket: str, *more: str) -> argparse.Namespace:
    """The command with the three targets given as options (no stack)."""
    return parse(
        source,
        "--function-arn",
        FUNCTION_ARN,
        "--role-arn",
        ROLE_ARN,
        "--operations-bucket",
        operations_bucket,
        *more,
    )


@pytest.fixture
def s3control() -> Iterator[Stubber]:
    """A real s3control client whose calls the Stubber answers (after validating them)."""
    client = boto3.client("s3control", region_name=REGION)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def clients(s3control: Stubber) -> Clients:
    """moto's S3, STS and CloudFormation (the `aws` fixture's environment), the stubbed s3control."""
    return Clients(boto3.Session(region_name=REGION), s3control=s3control.client)


def buckets(aws: Aws, keys: list[str] = AWKWARD_KEYS) -> tuple[str, str]:
    """A documents bucket holding `keys`, and an empty operations bucket."""
    documents, operations = aws.bucket(), aws.name("operations")
    aws.s3.create_bucket(Bucket=operations)
    for key in keys:
        aws.s3.put_object(Bucket=documents, Key=key, Body=b"x")
    return documents, operations


def decoded_manifest(aws: Aws, location: S3Url) -> list[tuple[str, str]]:
    """The (bucket, key) rows of a CSV manifest, keys URL-decoded."""
    text = aws.s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read().decode("utf-8")
    return [(bucket, unquote(key)) for bucket, key in csv.reader(io.StringIO(text))]


def etag(aws: Aws, location: S3Url) -> str:
    return str(aws.s3.head_object(Bucket=location.bucket, Key=location.key)["ETag"]).strip('"')


class Captured:
    """Equal to anything, remembering it: a Stubber expectation for a value checked afterwards."""

    value: Any = None

    def __eq__(self, other: object) -> bool:
        self.value = other
        return True

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


# The manifest, against moto's S3 server.


def test_the_manifest_round_trips_awkward_keys_and_skips_folders(aws: Aws) -> None:
    listed = [*AWKWARD_KEYS, "docs/", "docs/naïve/", "docs-elsewhere/not-listed.txt", "other/x.txt"]
    documents, operations = buckets(aws, listed)
    counts: list[int] = []

    manifest = listed_manifest(aws.s3, S3Url(documents, "docs/"), operations, counts.append)

    assert manifest is not None
    assert manifest.objects == len(AWKWARD_KEYS)
    assert manifest.format == CSV_FORMAT
    assert manifest.location.bucket == operations
    assert re.fullmatch(rf"manifests/\d{{8}}T\d{{6}}Z-{documents}-[0-9a-f]{{8}}\.csv", manifest.location.key)
    rows = decoded_manifest(aws, manifest.location)
    assert sorted(rows) == sorted((documents, key) for key in AWKWARD_KEYS)
    # The encoding is the one S3 decodes: `+` is %2B and a space %20, so decoding the way the Lambda
    # side may (unquote_plus) gives the same keys; commas and quotes never reach the CSV layer.
    raw = aws.s3.get_object(Bucket=operations, Key=manifest.location.key)["Body"].read().decode()
    assert f"{documents},docs/a%2Bb%3Dc%26d.txt\n" in raw
    assert f"{documents},docs/with%20space%20%20and%20two.md\n" in raw
    assert [unquote_plus(line.split(",")[1]) for line in raw.splitlines()] == [k for _, k in rows]
    assert manifest.etag == etag(aws, manifest.location)
    assert manifest.job_manifest() == {
        "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
        "Location": {
            "ObjectArn": f"arn:aws:s3:::{operations}/{manifest.location.key}",
            "ETag": manifest.etag,
        },
    }


def test_the_manifest_lists_every_page(aws: Aws) -> None:
    """Pages of 100 keys (S3's are 1000; putting thousands of objects into moto takes seconds)."""
    documents, operations = buckets(aws, [])
    keys = [f"many/{i:04d}.txt" for i in range(250)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: aws.s3.put_object(Bucket=documents, Key=key, Body=b""), keys))
    s3, pages = boto3.client("s3"), []
    s3.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **_: params.update(MaxKeys=100)
    )
    s3.meta.events.register(
        "after-call.s3.ListObjectsV2", lambda parsed, **_: pages.append(parsed["KeyCount"])
    )

    manifest = listed_manifest(s3, S3Url(documents, "many/"), operations, lambda count: None)

    assert pages == [100, 100, 50]
    assert manifest is not None and manifest.objects == len(keys)
    assert [key for _, key in decoded_manifest(aws, manifest.location)] == keys


def test_the_listing_reports_its_progress(tmp_path: Path) -> None:
    counts: list[int] = []
    keys = (f"k{i}" for i in range(2500))
    assert write_manifest(keys, "bucket", tmp_path / "m.csv", counts.append) == 2500
    assert counts == [1000, 2000]
    assert (tmp_path / "m.csv").read_text().splitlines()[:2] == ["bucket,k0", "bucket,k1"]


# The stack's outputs, from moto's CloudFormation.

OUTPUTS = {
    "IndexingFunctionAliasArn": FUNCTION_ARN,
    "BatchOperationsRoleArn": ROLE_ARN,
    "OperationsBucketName": {"Ref": "Operations"},
}


def stack(aws: Aws, outputs: dict[str, Any]) -> tuple[str, str]:
    """A stack with a bucket `Operations` and `outputs`; its name and the bucket's name."""
    name = aws.name("embeddings")
    template = {
        "Resources": {"Operations": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    resources = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    return name, resources[0]["PhysicalResourceId"]


def test_the_targets_come_from_the_stack_and_options_override_them(aws: Aws, s3control: Stubber) -> None:
    name, operations = stack(aws, OUTPUTS)

    target = backfill_job.resolve_target(parse("s3://b/p", "--stack", name), clients(s3control))
    assert target == backfill_job.Target(FUNCTION_ARN, ROLE_ARN, operations)

    other_role = f"arn:aws:iam::{ACCOUNT}:role/other"
    target = backfill_job.resolve_target(
        parse("s3://b/p", "--stack", name, "--role-arn", other_role), clients(s3control)
    )
    assert target == backfill_job.Target(FUNCTION_ARN, other_role, operations)


def test_a_missing_output_or_stack_is_one_line_saying_what_to_fix(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    name, _ = stack(aws, {key: value for key, value in OUTPUTS.items() if key != "BatchOperationsRoleArn"})

    assert execute(parse("s3://b/p", "--stack", name), clients(s3control)) == 2
    assert capsys.readouterr().err == (
        f"backfill: stack {name} has no output BatchOperationsRoleArn: deploy the current template.yaml "
        "(sam deploy), or pass --role-arn\n"
    )

    assert execute(parse("s3://b/p", "--stack", "no-such-stack"), clients(s3control)) == 2
    error = capsys.readouterr().err
    assert error.startswith("backfill: reading the outputs of stack no-such-stack failed (ValidationError")
    assert error.endswith(f"in region {REGION}? (--stack, --region)\n")
    assert error.count("\n") == 1


def test_without_a_stack_all_three_options_are_needed_before_any_aws_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_aws = Clients(session=None)  # any AWS call would fail on it
    assert execute(parse("s3://b/p", "--role-arn", ROLE_ARN), no_aws) == 2
    assert capsys.readouterr().err == "backfill: give --stack NAME, or --function-arn, --operations-bucket\n"
    assert (
        execute(parse("s3://b/p", "--stack", "s", "--inventory", "s3://o/inventory/manifest.json"), no_aws)
        == 2
    )
    assert "--inventory with the prefix 'p'" in capsys.readouterr().err
    assert execute(parse("s3://b/p", "--stack", "s", "--job-id", JOB_ID), no_aws) == 2
    assert execute(parse("--stack", "s"), no_aws) == 2
    assert execute(parse("b/p", "--stack", "s"), no_aws) == 2
    assert "not an s3:// URL" in capsys.readouterr().err


# The job, through the Stubber: the request is validated against botocore's model and compared here.


def job_params(operations: str, manifest: Any, description: str, **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "AccountId": ACCOUNT,
        "ConfirmationRequired": False,
        "Operation": {
            "LambdaInvoke": {
                "FunctionArn": FUNCTION_ARN,
                "InvocationSchemaVersion": "2.0",
                "UserArguments": {"reason": "backfill"},
            }
        },
        "Report": {
            "Bucket": f"arn:aws:s3:::{operations}",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "Prefix": "reports",
            "ReportScope": "FailedTasksOnly",
        },
        "ClientRequestToken": ANY,
        "Manifest": manifest,
        "Description": description,
        "Priority": 10,
        "RoleArn": ROLE_ARN,
    }
    return {**params, **changes}


def test_a_backfill_writes_the_manifest_and_creates_the_job(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    documents, operations = buckets(aws)
    manifest, token = Captured(), Captured()
    expected = job_params(operations, manifest, f"backfill s3://{documents}/docs/", ClientRequestToken=token)
    s3control.add_response("create_job", {"JobId": JOB_ID}, expected)

    assert execute(explicit(f"s3://{documents}/docs/", operations, "--no-wait"), clients(s3control)) == 0

    location = manifest.value["Location"]
    key = location["ObjectArn"].removeprefix(f"arn:aws:s3:::{operations}/")
    assert manifest.value["Spec"] == {"Format": CSV_FORMAT, "Fields": ["Bucket", "Key"]}
    assert location["ETag"] == etag(aws, S3Url(operations, key))
    assert sorted(k for _, k in decoded_manifest(aws, S3Url(operations, key))) == sorted(AWKWARD_KEYS)
    assert uuid.UUID(token.value)
    out = capsys.readouterr().out
    assert (
        f"{len(AWKWARD_KEYS)} objects under s3://{documents}/docs/; manifest s3://{operations}/{key}" in out
    )
    assert f"job {JOB_ID} created" in out
    assert f"watch it with: python -m embedding_engine backfill --job-id {JOB_ID}" in out


def test_report_priority_and_reason_options(aws: Aws, s3control: Stubber) -> None:
    documents, operations = buckets(aws)
    expected = job_params(
        operations,
        ANY,
        f"reindex s3://{documents}/docs/deep",
        Priority=50,
        Report={**job_params(operations, ANY, "")["Report"], "ReportScope": "AllTasks"},
        Operation={
            "LambdaInvoke": {
                "FunctionArn": FUNCTION_ARN,
                "InvocationSchemaVersion": "2.0",
                "UserArguments": {"reason": "reindex"},
            }
        },
    )
    s3control.add_response("create_job", {"JobId": JOB_ID}, expected)
    more = ("--report", "all", "--priority", "50", "--reason", "reindex", "--no-wait")
    assert execute(explicit(f"s3://{documents}/docs/deep", operations, *more), clients(s3control)) == 0


def test_an_empty_listing_creates_no_job(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    documents, operations = buckets(aws, ["docs/", "elsewhere/a.txt"])

    assert execute(explicit(f"s3://{documents}/docs/", operations), clients(s3control)) == 0

    assert (
        f"no objects under s3://{documents}/docs/: nothing to index, no job created"
        in capsys.readouterr().out
    )
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=operations)


def inventory(aws: Aws, operations: str, source: str, file_format: str = "CSV") -> str:
    """An S3 Inventory report's manifest.json under the operations bucket's inventory/; its key."""
    key = f"inventory/{source}/all/2026-01-02T01-00Z/manifest.json"
    report = {
        "sourceBucket": source,
        "destinationBucket": f"arn:aws:s3:::{operations}",
        "version": "2016-11-30",
        "fileFormat": file_format,
        "fileSchema": "Bucket, Key",
        "files": [{"key": f"inventory/{source}/all/data/a.csv.gz", "size": 10, "MD5checksum": "0" * 32}],
    }
    aws.s3.put_object(Bucket=operations, Key=key, Body=json.dumps(report).encode())
    return key


def test_an_inventory_report_is_used_as_it_is(aws: Aws, s3control: Stubber) -> None:
    documents, operations = buckets(aws)
    key = inventory(aws, operations, documents)
    manifest = {
        "Spec": {"Format": INVENTORY_FORMAT},
        "Location": {
            "ObjectArn": f"arn:aws:s3:::{operations}/{key}",
            "ETag": etag(aws, S3Url(operations, key)),
        },
    }
    url = f"s3://{operations}/{key}"
    s3control.add_response(
        "create_job", {"JobId": JOB_ID}, job_params(operations, manifest, f"backfill {url}")
    )

    args = explicit(f"s3://{documents}", operations, "--inventory", url, "--no-wait")
    assert execute(args, clients(s3control)) == 0
    assert [item["Key"] for item in aws.s3.list_objects_v2(Bucket=operations)["Contents"]] == [
        key
    ]  # no listing


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("orc", "the inventory report is ORC: S3 Batch Operations takes CSV inventory reports only"),
        ("other bucket", "the inventory lists bucket someone-else, not "),
        ("not manifest.json", "--inventory takes an inventory report's manifest.json"),
        ("absent", "no such object: give the manifest.json of a delivered inventory report"),
    ],
)
def test_an_unusable_inventory_is_refused(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    documents, operations = buckets(aws, [])
    source = "someone-else" if setup == "other bucket" else documents
    key = inventory(aws, operations, source, "ORC" if setup == "orc" else "CSV")
    url = {
        "not manifest.json": f"s3://{operations}/inventory/x.csv",
        "absent": f"s3://{operations}/nope/manifest.json",
    }
    args = explicit(
        f"s3://{documents}", operations, "--inventory", url.get(setup, f"s3://{operations}/{key}")
    )
    assert execute(args, clients(s3control)) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


# Errors an operator meets: one line, exit 2.


def test_access_denied_on_create_job_says_which_permissions(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    documents, operations = buckets(aws, ["a.txt"])
    denial = f"User: arn:aws:iam::{ACCOUNT}:user/op is not authorized to perform: iam:PassRole on {ROLE_ARN}"
    s3control.add_client_error("create_job", "AccessDenied", denial, http_status_code=403)

    assert execute(explicit(f"s3://{documents}", operations), clients(s3control)) == 2

    assert capsys.readouterr().err == (
        f"backfill: creating the job failed (AccessDenied: {denial}): the credentials need s3:CreateJob, "
        f"and iam:PassRole on {ROLE_ARN}\n"
    )


def test_buckets_that_do_not_exist(aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    documents, operations = buckets(aws, ["a.txt"])

    assert execute(explicit("s3://no-such-bucket-here/docs", operations), clients(s3control)) == 2
    assert capsys.readouterr().err.startswith(
        "backfill: listing s3://no-such-bucket-here/docs failed (NoSuchBucket: "
    )
    assert execute(explicit(f"s3://{documents}", "no-such-operations"), clients(s3control)) == 2
    error = capsys.readouterr().err
    assert "uploading the manifest to s3://no-such-operations/manifests/" in error
    assert error.endswith("no bucket no-such-operations: check --operations-bucket (or the stack's output)\n")


def test_no_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached: signing fails first

    assert backfill.run(explicit("s3://b/p", "ops", "--region", REGION)) == 2
    assert capsys.readouterr().err.startswith("backfill: no AWS credentials: pass --profile, set AWS_PROFILE")
    assert backfill.run(parse("s3://b/p", "--stack", "s", "--profile", "nobody")) == 2
    assert "The config profile (nobody) could not be found: check --profile" in capsys.readouterr().err


@pytest.mark.integration  # a subprocess
def test_the_command_imports_no_model_and_no_database_driver() -> None:
    code = (
        "import sys, embedding_engine.backfill; "
        "print([m for m in ('torch', 'sentence_transformers', 'psycopg', 'numpy', 'embedding_engine.engine') "
        "if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**inherited_environment(), "PYTHONPATH": str(LAYER_DIR)},
        check=True,
    )
    assert done.stdout.strip() == "[]"


# Progress: scripted DescribeJob answers, a fake clock that moves only when the loop sleeps.


class FakeTime:
    def __init__(self) -> None:
        self.now = 5000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def described(
    status: str, succeeded: int = 0, failed: int = 0, total: int = 0, active: int | None = None, **extra: Any
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TotalNumberOfTasks": total,
        "NumberOfTasksSucceeded": succeeded,
        "NumberOfTasksFailed": failed,
    }
    if active is not None:
        summary["Timers"] = {"ElapsedTimeInActiveSeconds": active}
    job = {
        "JobId": JOB_ID,
        "Status": status,
        "Priority": 10,
        "ConfirmationRequired": False,
        "ProgressSummary": summary,
        "Report": {
            "Bucket": "arn:aws:s3:::ops-bucket",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "Prefix": "reports",
            "ReportScope": "FailedTasksOnly",
        },
        "RoleArn": ROLE_ARN,
        "CreationTime": datetime(2026, 1, 2, tzinfo=UTC),
        **extra,
    }
    return {"Job": job}


def script(stubber: Stubber, *answers: dict[str, Any]) -> None:
    for answer in answers:
        stubber.add_response("describe_job", answer, {"AccountId": ACCOUNT, "JobId": JOB_ID})


def watcher(stubber: Stubber, time: FakeTime, out: io.StringIO) -> Watcher:
    return Watcher(stubber.client, ACCOUNT, out, sleep=time.sleep, clock=time.clock)


def test_progress_until_complete(s3control: Stubber) -> None:
    script(
        s3control,
        described("Preparing"),
        described("Active", 300, 0, 1000, active=20),
        described("Active", 700, 0, 1000, active=40),
        described("Complete", 1000, 0, 1000, active=50),
    )
    time, out = FakeTime(), io.StringIO()

    assert watcher(s3control, time, out).watch(JOB_ID, interval=7) == 0

    assert time.sleeps == [7, 7, 7]
    assert out.getvalue().splitlines() == [
        "Preparing: S3 is reading the manifest",
        "Active  300 succeeded  0 failed  of 1,000  30.0%  0:00:20  15.0 tasks/s",
        "Active  700 succeeded  0 failed  of 1,000  70.0%  0:00:40  17.5 tasks/s",
        "Complete  1,000 succeeded  0 failed  of 1,000  100.0%  0:00:50  20.0 tasks/s",
        "Complete: 1,000 succeeded, 0 failed of 1,000 tasks in 0:00:50 (20.0 tasks/s)",
        f"completion report (failed tasks): s3://ops-bucket/reports/job-{JOB_ID}/",
    ]


def test_failed_tasks_exit_1_and_point_at_the_report(s3control: Stubber) -> None:
    script(s3control, described("Active", 5, 1, 10), described("Complete", 8, 2, 10))
    time, out = FakeTime(), io.StringIO()

    assert watcher(s3control, time, out).watch(JOB_ID, interval=10) == 1

    lines = out.getvalue().splitlines()
    assert (
        lines[0] == "Active  5 succeeded  1 failed  of 10  60.0%  0:00:00  0.0 tasks/s"
    )  # no Timers: our clock
    assert lines[1] == "Complete  8 succeeded  2 failed  of 10  100.0%  0:00:10  1.0 tasks/s"
    assert lines[3] == (
        f"completion report (failed tasks; the keys and the function's errors): s3://ops-bucket/reports/job-{JOB_ID}/"
    )


def test_a_failed_job_prints_its_reasons(s3control: Stubber) -> None:
    reasons = [{"FailureCode": "ManifestNotFound", "FailureReason": "Reading the manifest was denied."}]
    script(s3control, described("Failed", 0, 0, 0, FailureReasons=reasons))
    out = io.StringIO()

    assert watcher(s3control, FakeTime(), out).watch(JOB_ID, interval=10) == 1

    assert "  ManifestNotFound: Reading the manifest was denied.\n" in out.getvalue()


def test_on_a_terminal_the_line_is_rewritten(s3control: Stubber) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    script(s3control, described("Active", 1, 0, 4, active=1), described("Complete", 4, 0, 4, active=2))
    out = Terminal()

    assert watcher(s3control, FakeTime(), out).watch(JOB_ID, interval=1) == 0

    first = "Active  1 succeeded  0 failed  of 4  25.0%  0:00:01  1.0 tasks/s"
    second = "Complete  4 succeeded  0 failed  of 4  100.0%  0:00:02  2.0 tasks/s"
    assert out.getvalue().startswith(f"\r{first}\r{second.ljust(len(first))}\nComplete: 4 succeeded")
    line = ProgressLine(out)
    line.show("a long line")
    line.show("short")
    assert out.getvalue().endswith("\ra long line\rshort      ")  # the old text is blanked out


def test_ctrl_c_stops_watching_and_says_how_to_resume(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    script(s3control, described("Active", 1, 0, 4))

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    args = parse("--job-id", JOB_ID, "--region", REGION)
    assert execute(args, clients(s3control), sleep=interrupted) == 130

    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"stopped watching: job {JOB_ID} keeps running",
        f"watch it again with: python -m embedding_engine backfill --region {REGION} --job-id {JOB_ID}",
    ]


def test_job_id_resumes_and_no_wait_looks_once(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    script(s3control, described("Active", 1, 0, 4, active=4))
    assert execute(parse("--job-id", JOB_ID, "--no-wait"), clients(s3control)) == 0
    assert capsys.readouterr().out == "Active  1 succeeded  0 failed  of 4  25.0%  0:00:04  0.2 tasks/s\n"

    script(s3control, described("Active", 1, 0, 4), described("Complete", 4, 0, 4))
    time = FakeTime()
    assert (
        execute(parse("--job-id", JOB_ID, "--poll-seconds", "2"), clients(s3control), sleep=time.sleep) == 0
    )
    assert time.sleeps == [2]

    s3control.add_client_error("describe_job", "NotFoundException", "Job not found", http_status_code=404)
    assert execute(parse("--job-id", JOB_ID), clients(s3control)) == 2
    assert capsys.readouterr().err == (
        f"backfill: reading job {JOB_ID} failed (NotFoundException: Job not found): no such job in account "
        f"{ACCOUNT} (and this region: --region)\n"
    )


def test_a_new_job_is_watched_to_the_end(
    aws: Aws, s3control: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    documents, operations = buckets(aws, ["a.txt", "b.txt"])
    s3control.add_response("create_job", {"JobId": JOB_ID})
    script(s3control, described("New"), described("Complete", 2, 0, 2, active=1))
    time = FakeTime()

    assert execute(explicit(f"s3://{documents}", operations), clients(s3control), sleep=time.sleep) == 0

    assert time.sleeps == [10.0]
    out = capsys.readouterr().out
    assert "New: S3 is reading the manifest\n" in out
    assert "Complete: 2 succeeded, 0 failed of 2 tasks in 0:00:01 (2.0 tasks/s)\n" in out
