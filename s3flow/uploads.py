"""Incomplete multipart uploads: found under a transfer's destinations, and aborted by age.

A multipart copy that is cancelled or fails aborts its own upload (copy.py). One a
crash interrupted stays open, and on AWS its parts are billed until it is aborted:
the next run of the same transfer aborts those its earlier runs recorded
(flows/resume.py). What no s3flow run recorded may be another writer's upload in
progress, so it is only ever aborted by age, an age the user gives:

| command                                        | does                                          |
|------------------------------------------------|-----------------------------------------------|
| `s3flow plan M` / `s3flow verify M`            | report the uploads open under M's destinations (count, bytes, oldest) |
| `s3flow uploads s3://bucket/prefix/`           | list those under a prefix                     |
| `s3flow uploads ... --abort --older-than 7d`   | abort those started more than 7 days ago      |
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import InputError, S3Error
from .record import ObjectRef
from .retry import Retrier
from .storage import OpenUpload, Storage

MEASURE_BYTES = 1_000  # uploads whose parts are listed for their size (a ListParts each)
EXAMPLES = 10
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'90s', '30m', '12h', '7d', '2w' as seconds; InputError otherwise."""
    found = _AGE.match(text or "")
    if not found:
        raise InputError(f"--older-than {text!r}: give an age such as 7d, 12h or 30m")
    return float(found.group(1)) * _UNIT[found.group(2)]


def under(storage: Storage, prefix: ObjectRef, retrier: Retrier) -> Iterator[OpenUpload]:
    """The incomplete uploads under a prefix (or of one key), page by page."""
    marker = None
    while True:
        page, marker = retrier.call(storage.upload_page, prefix.bucket, prefix.key, marker)
        yield from page
        if not marker:
            return


@dataclass
class Report:
    """What is open: count, bytes (of the first MEASURE_BYTES), the oldest, examples."""

    count: int = 0
    bytes: int = 0
    measured: int = 0
    oldest: float | None = None
    examples: list[dict] = field(default_factory=list)
    error: str = ""  # why a destination could not be listed (a store without the call...)

    def add(self, upload: OpenUpload, storage: Storage, retrier: Retrier) -> None:
        self.count += 1
        if upload.initiated is not None and (self.oldest is None or upload.initiated < self.oldest):
            self.oldest = upload.initiated
        if self.measured < MEASURE_BYTES:
            try:
                self.bytes += retrier.call(storage.upload_bytes, upload)
                self.measured += 1
            except S3Error:
                pass
        if len(self.examples) < EXAMPLES:
            self.examples.append(_describe(upload))

    def to_json(self) -> dict:
        return {
            "count": self.count,
            "bytes": self.bytes,
            "bytes_of": self.measured,
            "oldest": _iso(self.oldest),
            "examples": self.examples,
            "error": self.error,
        }


def report(storage: Storage, prefixes: Iterable[ObjectRef], retrier: Retrier) -> Report:
    """The uploads open under each destination prefix (a prefix covering another is listed once)."""
    found = Report()
    seen: set[str] = set()
    for prefix in _outermost(prefixes):
        try:
            for upload in under(storage, prefix, retrier):
                if f"{upload.ref.uri}#{upload.upload_id}" not in seen:
                    seen.add(f"{upload.ref.uri}#{upload.upload_id}")
                    found.add(upload, storage, retrier)
        except S3Error as exc:
            found.error = f"{exc.code}: {exc.message} (s3://{prefix.bucket}/{prefix.key})"
    return found


def abort_older(
    storage: Storage, prefix: ObjectRef, older_than: float, retrier: Retrier, dry_run: bool = False
) -> tuple[list[dict], list[dict]]:
    """Abort the uploads under `prefix` started more than `older_than` seconds ago:
    (aborted, failed), each upload described. Younger ones are left alone."""
    cutoff = time.time() - older_than
    aborted, failed = [], []
    for upload in list(under(storage, prefix, retrier)):
        if upload.initiated is None or upload.initiated > cutoff:
            continue
        try:
            if not dry_run:
                retrier.call(storage.abort_multipart, upload.ref, upload.upload_id)
            aborted.append(_describe(upload))
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                continue
            failed.append({**_describe(upload), "error": f"{exc.code}: {exc.message}"})
    return aborted, failed


def text(found: dict) -> str:
    """A report (Report.to_json) in a line or a few."""
    if found["error"]:
        return f"incomplete uploads: could not list ({found['error']})"
    if not found["count"]:
        return "incomplete uploads: none under the destinations"
    measured = found["bytes_of"]
    of = "" if measured == found["count"] else f" (of the first {measured:,})"
    lines = [
        f"incomplete uploads: {found['count']:,} under the destinations, {found['bytes']:,} bytes in "
        f"parts{of}, the oldest from {found['oldest']} (billed until aborted: `s3flow uploads "
        "s3://bucket/prefix/ --abort --older-than 7d`)"
    ]
    lines += [f"  {e['uri']} upload {e['upload_id']} started {e['initiated']}" for e in found["examples"]]
    return "\n".join(lines)


def _outermost(prefixes: Iterable[ObjectRef]) -> list[ObjectRef]:
    ordered = sorted({(p.bucket, p.key) for p in prefixes})
    kept: list[tuple[str, str]] = []
    for bucket, key in ordered:
        if not any(bucket == b and key.startswith(k) for b, k in kept):
            kept.append((bucket, key))
    return [ObjectRef(bucket, key) for bucket, key in kept]


def _describe(upload: OpenUpload) -> dict:
    return {"uri": upload.ref.uri, "upload_id": upload.upload_id, "initiated": _iso(upload.initiated)}


def _iso(stamp: float | None) -> str | None:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds") if stamp else None
