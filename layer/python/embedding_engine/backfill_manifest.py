"""The object list of a backfill job: S3 Batch Operations' CSV manifest written from a listing, or an
S3 Inventory report; and the one-line errors an operator can act on. boto3 only (no model, no
database): `embedding_engine.backfill` runs from an operator's machine."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

CSV_FORMAT = "S3BatchOperations_CSV_20180820"
INVENTORY_FORMAT = "S3InventoryReport_CSV_20161130"
MANIFEST_PREFIX = "manifests/"
INVENTORY_PREFIX = "inventory/"
# A single PutObject takes up to 5 GiB: some 50 million keys. Beyond that, S3 Inventory lists them.
MAX_MANIFEST_BYTES = 5 * 1024**3
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "Forbidden", "403"})
MISSING_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound", "NotFoundException", "404"})
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)


class BackfillError(Exception):
    """A problem the operator fixes (credentials, permissions, names): reported in one line, exit 2."""


@contextmanager
def aws_call(doing: str, **hints: str) -> Iterator[None]:
    """Turn a ClientError raised inside into a BackfillError naming what failed and what to fix.
    `hints` are keyed by error code, or by `denied` (access denied) or `missing` (no such thing)."""
    try:
        yield
    except ClientError as error:
        raise BackfillError(explain(error, doing, hints)) from error


def explain(error: ClientError, doing: str, hints: Mapping[str, str]) -> str:
    """`doing failed (Code: message): hint`, on one line."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", "")) or "error"
    message = " ".join(str(details.get("Message", "")).split())
    if code in CREDENTIAL_CODES:
        hint = "the AWS credentials are invalid or expired: refresh them (aws sso login, or aws configure)"
    elif code in hints:
        hint = hints[code]
    elif code in DENIED_CODES:
        hint = hints.get("denied", "")
    elif code in MISSING_CODES:
        hint = hints.get("missing", "")
    else:
        hint = ""
    cause = f"{code}: {message}" if message else code
    return f"{doing} failed ({cause})" + (f": {hint}" if hint else "")


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Url:
        """`s3://bucket/key-or-prefix` (the key may be empty)."""
        if not text.startswith("s3://") or not text[5:].split("/", 1)[0]:
            raise BackfillError(f"not an s3:// URL: {text!r} (expected s3://bucket/prefix)")
        bucket, _, key = text[5:].partition("/")
        return cls(bucket=bucket, key=key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Manifest:
    """Where the job's object list is, its ETag and format; `objects` when we counted them."""

    location: S3Url
    etag: str
    format: str
    objects: int | None = None

    def job_manifest(self, partition: str = "aws") -> dict[str, Any]:
        """CreateJob's `Manifest` parameter."""
        spec: dict[str, Any] = {"Format": self.format}
        if self.format == CSV_FORMAT:
            spec["Fields"] = ["Bucket", "Key"]
        arn = f"arn:{partition}:s3:::{self.location.bucket}/{self.location.key}"
        return {"Spec": spec, "Location": {"ObjectArn": arn, "ETag": self.etag}}


def manifest_line(bucket: str, key: str) -> str:
    """One CSV row: the bucket, and the key URL-encoded as the format requires (UTF-8, every byte
    but letters, digits, `-._~` and `/` as %XX: a space is %20, `+` is %2B, `,` is %2C)."""
    return f"{bucket},{quote(key, safe='/')}\n"


def list_keys(s3: Any, source: S3Url) -> Iterator[str]:
    """The keys under `source` (ListObjectsV2, every page), without "folder" keys ending in `/`."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.key)
    for page in pages:
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield item["Key"]


def write_manifest(keys: Iterator[str], bucket: str, path: Path, progress: Callable[[int], None]) -> int:
    """Write the CSV manifest of `keys` in `bucket` to `path`; the number of rows. `progress` gets
    the running count every 1000 rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as file:
        for key in keys:
            file.write(manifest_line(bucket, key))
            count += 1
            if count % 1000 == 0:
                progress(count)
    return count


def manifest_key(bucket: str, now: datetime | None = None) -> str:
    """`manifests/<UTC timestamp>-<bucket>-<short id>.csv`."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{MANIFEST_PREFIX}{stamp}-{bucket}-{uuid.uuid4().hex[:8]}.csv"


def listed_manifest(
    s3: Any, source: S3Url, operations_bucket: str, progress: Callable[[int], None]
) -> Manifest | None:
    """List `source`, write its CSV manifest and upload it to the operations bucket's `manifests/`;
    None when nothing is listed (nothing uploaded)."""
    with tempfile.TemporaryDirectory(prefix="backfill-") as folder:
        path = Path(folder) / "manifest.csv"
        with aws_call(
            f"listing {source}",
            missing=f"check the bucket name in {source}",
            denied=f"the credentials need s3:ListBucket on {source.bucket}",
        ):
            count = write_manifest(list_keys(s3, source), source.bucket, path, progress)
        if count == 0:
            return None
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BackfillError(
                f"{count} objects make a manifest over 5 GiB: use an S3 Inventory report (--inventory)"
            )
        location = S3Url(operations_bucket, manifest_key(source.bucket))
        with (
            aws_call(
                f"uploading the manifest to {location}",
                missing=f"no bucket {operations_bucket}: check --operations-bucket (or the stack's output)",
                denied=f"the credentials need s3:PutObject on {operations_bucket}/{MANIFEST_PREFIX}*",
            ),
            path.open("rb") as body,
        ):
            response = s3.put_object(
                Bucket=location.bucket, Key=location.key, Body=body, ContentType="text/csv"
            )
    return Manifest(location=location, etag=response["ETag"].strip('"'), format=CSV_FORMAT, objects=count)


def inventory_manifest(s3: Any, location: S3Url, source_bucket: str) -> tuple[Manifest, dict[str, Any]]:
    """The S3 Inventory report whose manifest.json is at `location`, checked to be a CSV inventory of
    `source_bucket`; and that manifest.json (its `files` are the report's data files)."""
    if not location.key.endswith("manifest.json"):
        raise BackfillError(
            f"--inventory takes an inventory report's manifest.json "
            f"(s3://bucket/.../<date>/manifest.json), not {location}"
        )
    with aws_call(
        f"reading the inventory manifest {location}",
        missing="no such object: give the manifest.json of a delivered inventory report",
        denied=f"the credentials need s3:GetObject on {location.bucket}/{location.key}",
    ):
        response = s3.get_object(Bucket=location.bucket, Key=location.key)
        text = response["Body"].read()
    try:
        report = json.loads(text)
    except ValueError as error:
        raise BackfillError(f"{location} is not an inventory manifest.json: {error}") from error
    if not isinstance(report, dict) or "fileFormat" not in report:
        raise BackfillError(f"{location} is not an inventory manifest.json (no fileFormat)")
    if report["fileFormat"] != "CSV":
        raise BackfillError(
            f"the inventory report is {report['fileFormat']}: S3 Batch Operations takes CSV inventory "
            "reports only (set the inventory's output format to CSV)"
        )
    if report.get("sourceBucket") != source_bucket:
        raise BackfillError(f"the inventory lists bucket {report.get('sourceBucket')}, not {source_bucket}")
    manifest = Manifest(location=location, etag=response["ETag"].strip('"'), format=INVENTORY_FORMAT)
    return manifest, report
