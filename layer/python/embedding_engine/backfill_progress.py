"""Watching an S3 Batch Operations job: one updating progress line until the job ends, then its
summary and where its completion report is. boto3 only, like `embedding_engine.backfill`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from embedding_engine.backfill_manifest import aws_call

TERMINAL = frozenset({"Complete", "Failed", "Cancelled"})
# What a status means to an operator, when its name alone does not say.
WAITING = {
    "New": "S3 is reading the manifest",
    "Preparing": "S3 is reading the manifest",
    "Suspended": "waiting for confirmation: aws s3control update-job-status --requested-job-status Ready",
}


class ProgressLine:
    """A line rewritten in place on a terminal; elsewhere (a log, a pipe) printed when it changes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        if self.tty:
            self.out.write("\r" + text.ljust(len(self.last)))
        else:
            self.out.write(text + "\n")
        self.out.flush()
        self.last = text

    def end(self) -> None:
        """Leave the line as it is, and move below it."""
        if self.tty and self.last:
            self.out.write("\n")
            self.out.flush()
        self.last = ""


def duration(seconds: float) -> str:
    """`h:mm:ss`."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def counts(job: dict[str, Any]) -> tuple[int, int, int]:
    """(succeeded, failed, total) tasks."""
    summary = job.get("ProgressSummary", {})
    return (
        int(summary.get("NumberOfTasksSucceeded", 0)),
        int(summary.get("NumberOfTasksFailed", 0)),
        int(summary.get("TotalNumberOfTasks", 0)),
    )


def elapsed(job: dict[str, Any], watched: float) -> float:
    """The job's time active, as S3 counts it; else how long we have been watching."""
    active = job.get("ProgressSummary", {}).get("Timers", {}).get("ElapsedTimeInActiveSeconds")
    return float(active) if active is not None else watched


def status_line(job: dict[str, Any], watched: float) -> str:
    """`Active  4,210 succeeded  3 failed  of 10,000  42.1%  0:07:31  9.3 tasks/s`."""
    status = str(job["Status"])
    succeeded, failed, total = counts(job)
    if not total and status in WAITING:
        return f"{status}: {WAITING[status]}"
    seconds = elapsed(job, watched)
    percent = f"{100 * (succeeded + failed) / total:.1f}%" if total else "-"
    rate = (succeeded + failed) / seconds if seconds > 0 else 0.0
    return (
        f"{status}  {succeeded:,} succeeded  {failed:,} failed  of {total:,}  {percent}  "
        f"{duration(seconds)}  {rate:.1f} tasks/s"
    )


def report_location(job: dict[str, Any]) -> str | None:
    """`s3://bucket/prefix/job-<id>/`, where S3 writes the completion report; None if disabled."""
    report = job.get("Report", {})
    if not report.get("Enabled"):
        return None
    bucket = str(report["Bucket"]).rsplit(":", 1)[-1]  # arn:aws:s3:::name
    prefix = str(report.get("Prefix", "")).strip("/")
    return f"s3://{bucket}/{prefix + '/' if prefix else ''}job-{job['JobId']}/"


class Watcher:
    """Polls DescribeJob for one account's jobs, with the sleep and clock given (tests script them)."""

    def __init__(
        self,
        s3control: Any,
        account_id: str,
        out: TextIO,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        resume: str = "python -m embedding_engine backfill",
    ) -> None:
        self.s3control = s3control
        self.account_id = account_id
        self.out = out
        self.sleep = sleep
        self.clock = clock
        self.resume = resume

    def describe(self, job_id: str) -> dict[str, Any]:
        with aws_call(
            f"reading job {job_id}",
            missing=f"no such job in account {self.account_id} (and this region: --region)",
            denied="the credentials need s3:DescribeJob",
        ):
            job: dict[str, Any] = self.s3control.describe_job(AccountId=self.account_id, JobId=job_id)["Job"]
        return job

    def watch(self, job_id: str, *, interval: float, once: bool = False) -> int:
        """Show the job's progress until it ends (only its current state if `once`); its exit code:
        0 when complete with no failed task (or still running, if `once`), 1 otherwise, 130 on
        Ctrl-C, which stops watching, not the job."""
        started = self.clock()
        line = ProgressLine(self.out)
        try:
            while True:
                job = self.describe(job_id)
                line.show(status_line(job, self.clock() - started))
                if job["Status"] in TERMINAL or once:
                    break
                self.sleep(interval)
        except KeyboardInterrupt:
            line.end()
            print(f"stopped watching: job {job_id} keeps running", file=self.out)
            print(f"watch it again with: {self.resume} --job-id {job_id}", file=self.out)
            return 130
        line.end()
        if job["Status"] not in TERMINAL:
            return 0
        return self.summarize(job, self.clock() - started)

    def summarize(self, job: dict[str, Any], watched: float) -> int:
        """Print how the job ended and where its report is; 0 only if complete with no failed task."""
        succeeded, failed, total = counts(job)
        seconds = elapsed(job, watched)
        rate = (succeeded + failed) / seconds if seconds > 0 else 0.0
        print(
            f"{job['Status']}: {succeeded:,} succeeded, {failed:,} failed of {total:,} tasks "
            f"in {duration(seconds)} ({rate:.1f} tasks/s)",
            file=self.out,
        )
        for reason in job.get("FailureReasons", []):
            print(
                f"  {reason.get('FailureCode', 'failure')}: {reason.get('FailureReason', '')}", file=self.out
            )
        if job.get("StatusUpdateReason"):
            print(f"  {job['StatusUpdateReason']}", file=self.out)
        location = report_location(job)
        scope = (
            "failed tasks" if job.get("Report", {}).get("ReportScope") == "FailedTasksOnly" else "all tasks"
        )
        if location is None:
            print("no completion report (the job was created without one)", file=self.out)
        elif failed or job["Status"] != "Complete":
            print(
                f"completion report ({scope}; the keys and the function's errors): {location}", file=self.out
            )
        else:
            print(f"completion report ({scope}): {location}", file=self.out)
        return 0 if job["Status"] == "Complete" and not failed else 1
