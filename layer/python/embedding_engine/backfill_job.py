"""The backfill's S3 Batch Operations job: the stack's function, role and bucket, the object list
(a listing's manifest or an inventory report), and CreateJob's request. boto3 only, like
`embedding_engine.backfill`."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass
from typing import Any, TextIO

from embedding_engine.backfill_manifest import (
    INVENTORY_PREFIX,
    BackfillError,
    Manifest,
    S3Url,
    aws_call,
    inventory_manifest,
    listed_manifest,
)
from embedding_engine.backfill_progress import ProgressLine

# The template's stack outputs, with the options that override them.
STACK_OUTPUTS = (
    ("function_arn", "IndexingFunctionAliasArn", "--function-arn"),
    ("role_arn", "BatchOperationsRoleArn", "--role-arn"),
    ("operations_bucket", "OperationsBucketName", "--operations-bucket"),
)
REPORT_PREFIX = "reports"
REPORT_SCOPES = {"failed": "FailedTasksOnly", "all": "AllTasks"}


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
