"""`python -m embedding_engine backfill s3://bucket/prefix`: index objects that S3 never notified us
of (those there before the stack, or all of them again after a model change) with an S3 Batch
Operations job invoking the indexing function's live alias, and watch it until it ends. boto3 only
(no model, no database): operators run it from their machine."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.exceptions import (
    BotoCoreError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from embedding_engine.backfill_manifest import (
    INVENTORY_PREFIX,
    BackfillError,
    Manifest,
    S3Url,
    aws_call,
    inventory_manifest,
    listed_manifest,
)
from embedding_engine.backfill_progress import ProgressLine, Watcher

# The template's stack outputs, with the options that override them.
STACK_OUTPUTS = (
    ("function_arn", "IndexingFunctionAliasArn", "--function-arn"),
    ("role_arn", "BatchOperationsRoleArn", "--role-arn"),
    ("operations_bucket", "OperationsBucketName", "--operations-bucket"),
)
REPORT_PREFIX = "reports"
REPORT_SCOPES = {"failed": "FailedTasksOnly", "all": "AllTasks"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `backfill` command's arguments."""
    parser.add_argument("source", nargs="?", help="s3://bucket/prefix whose objects to index")
    parser.add_argument("--stack", help="the deployed stack whose outputs name the function, role and bucket")
    parser.add_argument("--function-arn", help="the indexing function's alias ARN (IndexingFunctionAliasArn)")
    parser.add_argument("--role-arn", help="the role S3 Batch Operations assumes (BatchOperationsRoleArn)")
    parser.add_argument("--operations-bucket", help="bucket for manifests and reports (OperationsBucketName)")
    parser.add_argument("--inventory", metavar="S3_URL", help="an S3 Inventory report's manifest.json to use")
    parser.add_argument(
        "--report",
        choices=sorted(REPORT_SCOPES),
        default="failed",
        help="completion report of failed tasks (default) or all",
    )
    parser.add_argument("--priority", type=int, default=10, help="the job's priority (higher runs first)")
    parser.add_argument(
        "--reason", default="backfill", help="passed to the function; in the job's description"
    )
    parser.add_argument("--job-id", help="watch this existing job instead of creating one")
    parser.add_argument("--no-wait", action="store_true", help="create the job and return without watching")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="seconds between progress updates")
    parser.add_argument("--region", help="AWS region (default: the profile's, or AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE, or the default profile)")


class Clients:
    """boto3 clients of one session, made on first use; tests hand in their own."""

    def __init__(self, session: Any, **given: Any) -> None:
        self.session = session
        self._clients: dict[str, Any] = dict(given)

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]


@dataclass(frozen=True)
class Target:
    """What the job invokes, the role it runs as, and where its manifest and report go."""

    function_arn: str
    role_arn: str
    operations_bucket: str

    @property
    def partition(self) -> str:
        """`aws`, `aws-cn`, `aws-us-gov`: from the role's ARN."""
        parts = self.role_arn.split(":")
        return parts[1] if len(parts) > 1 and parts[0] == "arn" and parts[1] else "aws"


def run(args: argparse.Namespace) -> int:
    """The command: 0 when the job completed with no failed task (or was created, with --no-wait),
    1 when tasks or the job failed, 2 on an error the operator must fix, 130 on Ctrl-C."""
    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
    except ProfileNotFound as error:
        return fail(f"{error}: check --profile or AWS_PROFILE")
    return execute(args, Clients(session))


def execute(
    args: argparse.Namespace,
    clients: Clients,
    *,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """`run` with its clients, output, sleep and clock given."""
    stream = out or sys.stdout
    try:
        check_arguments(args)
        account = account_id(clients)  # first: the credentials are checked before any work
        try:
            job_id = args.job_id or start(args, clients, account, stream)
        except KeyboardInterrupt:
            print("\ninterrupted before a job id was received: no job to watch", file=stream)
            return 130
        if job_id is None:
            return 0
        watcher = Watcher(
            clients("s3control"), account, stream, sleep=sleep, clock=clock, resume=resume_hint(args)
        )
        if args.no_wait and not args.job_id:
            print(f"watch it with: {watcher.resume} --job-id {job_id}", file=stream)
            return 0
        return watcher.watch(job_id, interval=args.poll_seconds, once=args.no_wait)
    except BackfillError as error:
        return fail(str(error))
    except NoCredentialsError:
        return fail(
            "no AWS credentials: pass --profile, set AWS_PROFILE, or run aws sso login / aws configure"
        )
    except NoRegionError:
        return fail("no AWS region: pass --region or set AWS_REGION")
    except EndpointConnectionError as error:
        return fail(f"{error}: check the network and the region (--region)")
    except BotoCoreError as error:
        return fail(f"AWS: {error}")


def fail(message: str) -> int:
    print(f"backfill: {message}", file=sys.stderr)
    return 2


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory arguments before any AWS call."""
    if args.job_id and (args.source or args.inventory):
        raise BackfillError("give s3://bucket/prefix to start a job, or --job-id to watch one, not both")
    if not args.job_id and not args.source:
        raise BackfillError("give s3://bucket/prefix to index, or --job-id ID to watch a job")
    if args.poll_seconds <= 0:
        raise BackfillError("--poll-seconds must be above 0")
    if args.source:
        source = S3Url.parse(args.source)
        if args.inventory and source.key:
            raise BackfillError(
                f"--inventory with the prefix {source.key!r}: the inventory's own prefix filter decides what "
                f"it lists, so give s3://{source.bucket} alone"
            )
    if args.inventory:
        S3Url.parse(args.inventory)
    missing = [option for field, _, option in STACK_OUTPUTS if not getattr(args, field)]
    if not args.job_id and missing and not args.stack:
        raise BackfillError(f"give --stack NAME, or {', '.join(missing)}")


def resume_hint(args: argparse.Namespace) -> str:
    """The command that watches the job again, with the same region and profile."""
    options = "".join(
        f" --{name} {value}" for name in ("region", "profile") if (value := getattr(args, name))
    )
    return f"python -m embedding_engine backfill{options}"


def start(args: argparse.Namespace, clients: Clients, account: str, out: TextIO) -> str | None:
    """Write (or find) the manifest and create the job; its id, or None when there is nothing to index."""
    source = S3Url.parse(args.source)
    target = resolve_target(args, clients)
    manifest = find_manifest(args, clients, source, target, out)
    if manifest is None:
        print(f"no objects under {source}: nothing to index, no job created", file=out)
        return None
    request = job_request(
        account=account,
        target=target,
        manifest=manifest,
        description=f"{args.reason} {args.inventory or source}",
        reason=args.reason,
        report_scope=REPORT_SCOPES[args.report],
        priority=args.priority,
    )
    with aws_call(
        "creating the job",
        denied=f"the credentials need s3:CreateJob, and iam:PassRole on {target.role_arn}",
        BadRequestException="check --function-arn, --role-arn and --operations-bucket (or the stack)",
    ):
        job_id = str(clients("s3control").create_job(**request)["JobId"])
    print(f"job {job_id} created (priority {args.priority}, report: {REPORT_SCOPES[args.report]})", file=out)
    return job_id


def account_id(clients: Clients) -> str:
    """The account of the caller's credentials (STS GetCallerIdentity)."""
    with aws_call("checking the AWS credentials (sts get-caller-identity)"):
        return str(clients("sts").get_caller_identity()["Account"])


def resolve_target(args: argparse.Namespace, clients: Clients) -> Target:
    """The function, role and bucket: the explicit options, else the stack's outputs."""
    values = {field: getattr(args, field) for field, _, _ in STACK_OUTPUTS}
    missing = [(field, output, option) for field, output, option in STACK_OUTPUTS if not values[field]]
    if missing:  # check_arguments made sure that a stack is given
        outputs = stack_outputs(clients, args.stack)
        for field, output, option in missing:
            if not outputs.get(output):
                raise BackfillError(
                    f"stack {args.stack} has no output {output}: deploy the current template.yaml "
                    f"(sam deploy), or pass {option}"
                )
            values[field] = outputs[output]
    return Target(**values)


def stack_outputs(clients: Clients, stack: str) -> dict[str, str]:
    """The stack's outputs, by key."""
    region = clients.session.region_name if clients.session is not None else None
    with aws_call(
        f"reading the outputs of stack {stack}",
        ValidationError=f"is the stack name right, and in region {region}? (--stack, --region)",
        denied="the credentials need cloudformation:DescribeStacks, or pass the three options instead",
    ):
        [description] = clients("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in description.get("Outputs", [])}


def find_manifest(
    args: argparse.Namespace, clients: Clients, source: S3Url, target: Target, out: TextIO
) -> Manifest | None:
    """The inventory report given, or the CSV manifest of a fresh listing (None if it lists nothing)."""
    if args.inventory:
        location = S3Url.parse(args.inventory)
        inventory, report = inventory_manifest(clients("s3"), location, source.bucket)
        print(f"inventory report {location}: {len(report.get('files', []))} data files", file=out)
        if location.bucket != target.operations_bucket or not location.key.startswith(INVENTORY_PREFIX):
            print(
                f"warning: the stack's role reads inventory reports only under "
                f"s3://{target.operations_bucket}/{INVENTORY_PREFIX}: the job fails unless {target.role_arn} "
                f"may read {location} and its data files",
                file=out,
            )
        return inventory
    progress = ProgressLine(out)

    def listed(count: int) -> None:  # on a terminal every 1,000 keys; in a log every 100,000
        if progress.tty or count % 100_000 == 0:
            progress.show(f"listing {source}: {count:,} objects")

    manifest = listed_manifest(clients("s3"), source, target.operations_bucket, listed)
    progress.end()
    if manifest is not None:
        print(f"{manifest.objects:,} objects under {source}; manifest {manifest.location}", file=out)
    return manifest


def job_request(
    *,
    account: str,
    target: Target,
    manifest: Manifest,
    description: str,
    reason: str,
    report_scope: str,
    priority: int,
) -> dict[str, Any]:
    """CreateJob's parameters: a LambdaInvoke (schema 2.0) of the alias for every manifest entry."""
    return {
        "AccountId": account,
        "ConfirmationRequired": False,
        "Operation": {
            "LambdaInvoke": {
                "FunctionArn": target.function_arn,
                "InvocationSchemaVersion": "2.0",
                "UserArguments": {"reason": reason},
            }
        },
        "Report": {
            "Bucket": f"arn:{target.partition}:s3:::{target.operations_bucket}",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "Prefix": REPORT_PREFIX,
            "ReportScope": report_scope,
        },
        "ClientRequestToken": str(uuid.uuid4()),
        "Manifest": manifest.job_manifest(target.partition),
        "Description": description[:256],
        "Priority": priority,
        "RoleArn": target.role_arn,
    }
