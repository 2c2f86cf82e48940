"""`python -m embedding_engine backfill s3://bucket/prefix`: index objects that S3 never notified us
of (those there before the stack, or all of them again after a model change) with an S3 Batch
Operations job invoking the indexing function's live alias, and watch it until it ends. boto3 only
(no model, no database): operators run it from their machine."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TextIO

import boto3
from botocore.exceptions import (
    BotoCoreError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from embedding_engine.backfill_job import REPORT_SCOPES, STACK_OUTPUTS, Clients, account_id, start
from embedding_engine.backfill_manifest import BackfillError, S3Url
from embedding_engine.backfill_progress import Watcher


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
