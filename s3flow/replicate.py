"""Replicate one object to several buckets: a transfer (s3flow.transfer) with one
object row per destination. No Prefect here.

A destination that already holds an identical object is skipped and counts as a
success: the object is there. A destination bucket that does not exist fails
alone (NoSuchBucket), found before any copy.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .config import TransferConfig
from .errors import InputError, Problem
from .manifest import ManifestRow
from .record import DONE, FileResult, ObjectRef
from .transfer import Transfer

_BUCKET_RULE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def bucket_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name (AWS's general purpose rules), or None."""
    if not name:
        return "is empty"
    if not _BUCKET_RULE.match(name):
        return (
            "must be 3 to 63 characters of lowercase letters, digits, dots and hyphens, "
            "beginning and ending with a letter or digit"
        )
    if ".." in name:
        return "must not contain two dots in a row"
    try:
        ipaddress.IPv4Address(name)
        return "must not look like an IP address"
    except ValueError:
        return None


def bucket_problems(source_bucket: str, destination_buckets: list[str]) -> list[Problem]:
    """Each bucket name of a replication that S3 would refuse, with its field."""
    problems = []
    for field_name, name in [
        ("source_bucket", source_bucket),
        *((f"destination_buckets[{i}]", b) for i, b in enumerate(destination_buckets)),
    ]:
        if why := bucket_problem(name):
            problems.append(Problem(f"{name!r} {why}", field=field_name))
    return problems


def check_request(
    source_bucket: str, source_key: str, destination_buckets: list[str], destination_key: str | None
) -> None:
    """Every problem with a replication request at once; InputError if any."""
    problems = bucket_problems(source_bucket, destination_buckets)
    if not source_key:
        problems.append(Problem("is empty", field="source_key"))
    elif source_key.endswith("/"):
        problems.append(Problem(f"{source_key!r} is a prefix, not an object", field="source_key"))
    if destination_key is not None and (not destination_key or destination_key.endswith("/")):
        problems.append(Problem(f"{destination_key!r} is not an object key", field="destination_key"))
    if not destination_buckets:
        problems.append(Problem("needs at least one bucket", field="destination_buckets"))
    if source_bucket in destination_buckets and (destination_key or source_key) == source_key:
        problems.append(
            Problem(
                f"the source bucket {source_bucket!r} is among the destinations "
                "(the object would be copied onto itself)",
                field="destination_buckets",
            )
        )
    duplicates = sorted({b for b in destination_buckets if destination_buckets.count(b) > 1})
    if duplicates:
        problems.append(Problem(f"{', '.join(duplicates)} named more than once", field="destination_buckets"))
    if problems:
        raise InputError(problems, "replicate-object")


def batch_rows(source_bucket: str, objects: list[dict], destination_buckets: list[str]) -> list[ManifestRow]:
    """The rows of a batch of created objects (a `s3flow.objects.created` event's payload:
    key, version_id, event_time): one per object and destination, each carrying its
    event's time for the replication lag. An object named twice (a message delivered
    twice) is copied once. InputError lists every problem."""
    problems = bucket_problems(source_bucket, destination_buckets)
    if not destination_buckets:
        problems.append(Problem("needs at least one bucket", field="destination_buckets"))
    if not objects:
        problems.append(Problem("no objects", field="objects"))
    seen: dict[tuple[str, str | None], float | None] = {}
    for number, obj in enumerate(objects):
        key = obj.get("key") if isinstance(obj, dict) else None
        if not key or key.endswith("/"):
            problems.append(Problem(f"{key!r} is not an object key", field=f"objects[{number}].key"))
            continue
        when = _epoch(obj.get("event_time"))
        identity = (key, obj.get("version_id") or None)
        earlier = seen.get(identity)
        if identity not in seen or (when is not None and (earlier is None or when < earlier)):
            seen[identity] = when  # the first creation event's time: the lag is measured from it
    if source_bucket in destination_buckets:
        problems.append(
            Problem(f"the source bucket {source_bucket!r} is among the destinations", field="destination_buckets")
        )
    if problems:
        raise InputError(problems, "replicate-objects")
    rows: list[ManifestRow] = []
    for (key, version), when in seen.items():
        for bucket in destination_buckets:
            src = ObjectRef(source_bucket, key, version)
            rows.append(ManifestRow(len(rows) + 1, src, ObjectRef(bucket, key), event_time=when))
    return rows


def _epoch(text: str | None) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except (TypeError, ValueError):
        return None


def replication(
    config: TransferConfig,
    source_bucket: str,
    source_key: str,
    destination_buckets: list[str],
    destination_key: str | None = None,
) -> Transfer:
    """The transfer that copies s3://source_bucket/source_key into every destination bucket:
    one object row per destination, opened (checked) like any transfer."""
    check_request(source_bucket, source_key, destination_buckets, destination_key)
    src = ObjectRef(source_bucket, source_key)
    rows = [
        ManifestRow(number, src, ObjectRef(bucket, destination_key or source_key))
        for number, bucket in enumerate(destination_buckets, 1)
    ]
    return Transfer.open(f"replicate {src}", config, rows=rows)


def replicate(
    config: TransferConfig,
    source_bucket: str,
    source_key: str,
    destination_buckets: list[str],
    destination_key: str | None = None,
    on_result=None,
) -> list[FileResult]:
    """Copy s3://source_bucket/source_key into every destination bucket, in parallel
    (config.max_concurrency at most), on the one transfer loop; one result per
    destination, in their order."""
    results: list[FileResult] = []

    def seen(result: FileResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    replication(config, source_bucket, source_key, destination_buckets, destination_key).run(seen)
    return sorted(results, key=lambda result: result.line or 0)


@dataclass
class Outcome:
    """The aggregate of one replication: what the flow returns and reports."""

    source: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    succeeded_buckets: list[str] = field(default_factory=list)
    failed_buckets: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # failed bucket -> its error

    @classmethod
    def of(cls, source: str, results: list[FileResult]) -> Outcome:
        outcome = cls(source)
        for result in results:
            bucket = result.destination.removeprefix("s3://").split("/", 1)[0]
            outcome.total += 1
            if result.status in DONE:
                outcome.succeeded += 1
                outcome.succeeded_buckets.append(bucket)
            else:
                outcome.failed += 1
                outcome.failed_buckets.append(bucket)
                outcome.errors[bucket] = result.error or result.status
        return outcome

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "succeeded_buckets": self.succeeded_buckets,
            "failed_buckets": self.failed_buckets,
            "errors": self.errors,
        }

    def headline(self) -> str:
        return f"{self.source}: {self.succeeded} of {self.total} destinations succeeded, {self.failed} failed"
