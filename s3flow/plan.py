"""What to copy, skip and delete, decided before any copy is made.

Prefix rows are planned by joining the listings of source and destination on
the key below their prefixes into source-only, common and destination-only
objects. Stores do not agree on listing order (S3 lists in UTF-8 byte order,
SeaweedFS walks directories: "a/b" before "a b"), so the destination side is
held as a compact index and the source side streams page by page.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from .config import TransferConfig
from .errors import CREDENTIAL_CODES, InputError, S3Error
from .filters import included
from .manifest import ManifestRow
from .record import CANCELLED, SKIPPED, WOULD_COPY, FileResult, ObjectRef, failed
from .retry import Attempts, Retrier
from .storage import ARCHIVE_CLASSES, ObjectInfo, Storage


@dataclass(frozen=True)
class CopyItem:
    """One object to copy. `source` is known when a listing found it."""

    source_ref: ObjectRef
    destination: ObjectRef
    line: int
    source: ObjectInfo | None = None
    check_destination: bool = True  # an object row: compare with the destination first
    reason: str = ""  # why it is copied (decide's answer), when the listing already told
    expected: tuple[tuple[str, str], ...] = ()  # the manifest's (("md5", hex), ("sha256", hex))
    evidence: str = ""  # what settle proved of the source (the expected checksums)
    event_time: float | None = None  # replication: the object's creation event (its lag)

    @property
    def md5(self) -> str:
        return dict(self.expected).get("md5", "")

    @property
    def sha256(self) -> str:
        return dict(self.expected).get("sha256", "")

    @property
    def size(self) -> int:
        return self.source.size if self.source else 0


@dataclass(frozen=True)
class DeleteItem:
    destination: ObjectRef
    line: int
    size: int


Planned = CopyItem | DeleteItem | FileResult


def is_multipart_etag(etag: str) -> bool:
    return "-" in etag


def decide(source: ObjectInfo, destination: ObjectInfo | None) -> tuple[bool, str]:
    """Copy or not, and why. The sync rule, for prefix rows and object rows alike:

    | destination | size   | ETags                         | modified            | action |
    |-------------|--------|-------------------------------|---------------------|--------|
    | missing     |        |                               |                     | copy   |
    | exists      | differ |                               |                     | copy   |
    | exists      | same   | equal                         |                     | skip   |
    | exists      | same   | differ, both single-part MD5  |                     | copy   |
    | exists      | same   | differ, either multipart (-N) | destination older   | copy   |
    | exists      | same   | differ, either multipart (-N) | destination same/newer | skip |

    A multipart ETag is a hash of part hashes, so it differs from the source's
    whenever the part layout or the store's ETag scheme differs, even for equal
    bytes; there the copy we made is recognised by size and by having been
    written after the source was last modified (as `aws s3 sync` does).
    """
    if destination is None:
        return True, "new"
    if destination.size != source.size:
        return True, "size differs"
    if destination.etag == source.etag:
        return False, "identical (same size and ETag)"
    if not (is_multipart_etag(source.etag) or is_multipart_etag(destination.etag)):
        return True, "content differs (ETag)"
    if destination.last_modified < source.last_modified:
        return True, "source modified after the destination was written"
    return False, "same size, destination newer than source (multipart ETags are not comparable)"


def needs_settling(item: CopyItem) -> bool:
    """Whether a decision about this item still needs requests (see settle)."""
    return item.check_destination or (item.source is not None and item.source.storage_class in ARCHIVE_CLASSES)


def settle(
    item: CopyItem,
    source: Storage,
    destination: Storage,
    attempts: Attempts,
    request: Callable[..., Any],
    read_bytes: bool = True,
) -> CopyItem | FileResult:
    """The decisions the listing could not make, with HEADs (run on the transfer's pool,
    so thousands of object rows are decided in parallel):

    | item                       | requests                | decided                              |
    |----------------------------|-------------------------|--------------------------------------|
    | an object row              | HEAD source, destination| copy (with why) or skip: `decide`    |
    | a listed archived object   | HEAD source             | fail InvalidObjectState unless restored |
    | anything else              | none                    | copy, as listed                      |

    `request(attempts, call, *args)` makes one request under the transfer's slots and retries;
    `read_bytes` False (a plan) proves expected checksums only where the store answers."""
    if item.check_destination or item.source is None:
        info = request(attempts, source.head, item.source_ref)
        if info is None:
            raise S3Error("NoSuchKey", _missing_source(item.source_ref, source, attempts, request))
        if item.expected:
            item = replace(item, evidence=prove_expected(info, item.expected, attempts, source, request, read_bytes))
        copy, why = decide(info, request(attempts, destination.head, item.destination))
        if not copy:
            skipped = _skipped(info, item.destination, item.line, why)
            evidence = "; ".join(filter(None, ("ETag" if skipped_by_etag(why) else "", item.evidence)))
            return replace(
                skipped,
                requests=attempts.requests,
                evidence=evidence,
                md5=item.md5,
                sha256=item.sha256,
                event_time=item.event_time,
            )
        item = replace(item, source=info, check_destination=False, reason=why)
    elif item.source.storage_class in ARCHIVE_CLASSES:
        info = request(attempts, source.head, item.source_ref)  # only HEAD tells the restore state
        if info is None:
            raise S3Error("NoSuchKey", f"the source object {item.source_ref} does not exist")
        item = replace(item, source=info)
    if item.source is not None and item.source.needs_restore:
        now = time.time()
        return failed(
            item.source_ref.uri,
            item.destination.uri,
            "InvalidObjectState",
            f"the source is in {item.source.storage_class}: restore it (RestoreObject) before copying",
            size=item.source.size,
            started=now,
            ended=now,
            line=item.line,
            etag=item.source.etag,
            attempts=attempts.tries,
            requests=attempts.requests,
        )
    return item


def prove_expected(
    info: ObjectInfo,
    expected: tuple[tuple[str, str], ...],
    attempts: Attempts,
    storage: Storage,
    request: Callable[..., Any],
    read_bytes: bool = True,
) -> str:
    """Check the source against the manifest's md5/sha256 before anything is copied, so a
    mismatch leaves nothing at the destination; the copy is then proven equal to this
    source (pinned to its ETag) by its own evidence. What the store already says is used
    first: a single-part ETag is the MD5, a full-object SHA256 checksum the SHA-256.
    Only the rest is read, once, streamed. Raises ChecksumMismatch; returns the evidence.

    | expected | the store says                     | evidence                           |
    |----------|------------------------------------|------------------------------------|
    | md5      | single-part ETag (not SSE-KMS)     | expected MD5 = ETag                |
    | sha256   | a full-object SHA256 checksum      | expected SHA256 = full-object checksum |
    | either   | nothing that answers               | expected MD5/SHA256 of the bytes read |"""
    proven, unread = [], []
    algorithm, _, value = info.full_checksum.partition(":")
    for name, want in expected:
        if name == "md5" and info.etag_is_md5:
            _compare(info, name, want, info.etag.lower(), "its ETag")
            proven.append("expected MD5 = ETag")
        elif name == "sha256" and algorithm == "SHA256":
            _compare(info, name, want, base64.b64decode(value).hex(), "its full-object SHA256 checksum")
            proven.append("expected SHA256 = full-object checksum")
        else:
            unread.append(name)
    if unread and not read_bytes:
        names = "/".join(name.upper() for name in unread)
        return "; ".join([*proven, f"expected {names} not checked: a plan reads no bytes (verify does)"])
    if unread:
        found = request(attempts, storage.digests, info.ref, tuple(unread), info.etag)
        for name in unread:
            _compare(info, name, dict(expected)[name], found[name], "its bytes, read")
            proven.append(f"expected {name.upper()} of the bytes read")
    return "; ".join(proven)


def _compare(info: ObjectInfo, name: str, want: str, found: str, how: str) -> None:
    if found != want:
        raise S3Error(
            "ChecksumMismatch",
            f"the source's {name.upper()} is {found} ({how}), the manifest expects {want}: nothing was copied",
            info.ref.bucket,
            info.ref.key,
        )


def skipped_by_etag(why: str) -> bool:
    return why.startswith("identical")


def _missing_source(ref: ObjectRef, source: Storage, attempts: Attempts, request: Callable[..., Any]) -> str:
    """NoSuchKey's message, with a hint when objects exist below `key/`: the row was
    probably meant as a prefix row."""
    message = f"the source object {ref} does not exist"
    if ref.version_id or ref.key.endswith("/"):
        return message
    try:
        below, _ = request(attempts, source.list_page, ref.bucket, ref.key + "/", None, None, 1)
    except S3Error:
        return message
    if below:
        return (
            f"{message}, but objects exist below s3://{ref.bucket}/{ref.key}/: to copy that prefix, "
            "end the source and the destination with '/'"
        )
    return message


def would_copy(item: CopyItem, parts: int, attempts: Attempts) -> FileResult:
    """A dry run's result for a file it would copy, with how (`parts` write requests)."""
    method = "CopyObject" if parts == 1 else f"multipart, {parts} parts"
    now, source = time.time(), item.source
    return FileResult(
        item.source_ref.uri,
        item.destination.uri,
        WOULD_COPY,
        size=source.size if source else None,
        started=now,
        ended=now,
        detail=f"{item.reason}: {method}" if item.reason else method,
        etag=source.etag if source else "",
        line=item.line,
        parts=parts,
        requests=attempts.requests,
    )


class Planner:
    def __init__(
        self, config: TransferConfig, source: Storage, destination: Storage, retrier: Retrier | None = None
    ) -> None:
        self.config = config
        self.source = source
        self.destination = destination
        self.retrier = retrier or Retrier(config)
        self.listed_pages = 0  # ListObjectsV2 requests made, for the plan's request count
        self.excluded = 0  # source objects that filters left out
        self.rows_done = 0  # manifest rows whose every file has been planned

    def plan(self, rows: Iterable[ManifestRow], missing: dict[str, tuple[str, str]] | None = None) -> Iterator[Planned]:
        """Everything the rows ask for; `missing` is check_buckets' answer, if already known."""
        rows = list(rows)
        if missing is None:
            missing = check_buckets(rows, self.source, self.destination, self.retrier)
        self.rows_done = 0
        for row in rows:
            error = missing.get(row.source.bucket) or missing.get(row.destination.bucket)
            if row.is_prefix and row.source.bucket not in missing:
                yield from self._sync(row, missing.get(row.destination.bucket))
                self.rows_done += 1
                continue
            if not row.is_prefix and not error:
                single: Planned = CopyItem(
                    row.source, row.destination, row.line, expected=row.expected, event_time=row.event_time
                )
            else:
                single = _failed(row.source, row.destination, row.line, *(error or missing[row.source.bucket]))
                single = replace(single, event_time=row.event_time)
            self.rows_done += 1  # counted before it is handed out: its one file is planned
            yield single

    def _sync(self, row: ManifestRow, destination_error: tuple[str, str] | None) -> Iterator[Planned]:
        src, dst = row.source, row.destination
        try:
            filters = self.config.filters
            sources: Iterable[ObjectInfo] = self._listing(self.source, src, row.after, row.count)
            wanted = None
            if row.is_shard:  # a shard's few objects first: only their destinations are kept
                sources = list(sources)
                wanted = {source.ref.key[len(src.key) :] for source in sources}
            existing = {}
            for info in () if destination_error else self._listing(self.destination, dst):
                rel = info.ref.key[len(dst.key) :]
                if (wanted is None or rel in wanted) and included(rel, filters):
                    existing[rel] = info
            for source in sources:
                rel = source.ref.key[len(src.key) :]
                if not included(rel, filters):
                    self.excluded += 1
                    continue
                target = ObjectRef(dst.bucket, dst.key + rel)
                if destination_error:
                    yield _failed(source.ref, target, row.line, *destination_error, size=source.size)
                    continue
                copy, why = decide(source, existing.pop(rel, None))
                if copy:
                    yield CopyItem(source.ref, target, row.line, source, check_destination=False, reason=why)
                else:
                    yield _skipped(source, target, row.line, why)
        except S3Error as exc:
            yield _failed(src, dst, row.line, exc.code, f"listing failed: {exc.message}")
            return
        if self.config.delete:  # what is left had no source object
            for info in existing.values():
                yield DeleteItem(info.ref, row.line, info.size)

    def _listing(
        self, storage: Storage, prefix: ObjectRef, after: str | None = None, count: int | None = None
    ) -> Iterator[ObjectInfo]:
        """The objects under a prefix, in the store's listing order; for a shard, the
        `count` objects (None: all) listed after the key `after` (below the prefix)."""
        token = None
        start = prefix.key + after if after is not None else None
        left = count
        while left is None or left > 0:
            objects, token = self.retrier.call(storage.list_page, prefix.bucket, prefix.key, token, start)
            self.listed_pages += 1
            if left is not None:
                objects, left = objects[:left], left - len(objects[:left])
            yield from objects
            if not token:
                return


def check_buckets(
    rows: list[ManifestRow], source: Storage, destination: Storage, retrier: Retrier
) -> dict[str, tuple[str, str]]:
    """The buckets that do not exist, with (code, message), found once up front: some
    stores answer a copy into a missing bucket with a retryable 500 instead of NoSuchBucket.
    An endpoint that cannot be reached at all is bad input, reported before any copy."""
    missing = {}
    for side, storage in (("source", source), ("destination", destination)):
        for bucket in sorted({getattr(row, side).bucket for row in rows}):
            try:
                code = retrier.call(storage.bucket_error, bucket)
                # HEAD answers carry no error code: a refusal (403, or 400 for an expired
                # or malformed token) is asked again with a listing, which names it.
                refused = (
                    retrier.call(storage.credentials_error, bucket)
                    if code in ("AccessDenied", "BadRequest", "400", "403")
                    else None
                )
            except S3Error as exc:
                raise InputError(
                    _unreachable(side, storage.endpoint_url, bucket, exc, retrier.config.max_attempts)
                ) from None
            if code == "NoSuchBucket":
                missing[bucket] = (code, f"the {side} bucket {bucket!r} does not exist")
            elif refused in CREDENTIAL_CODES:
                raise InputError(
                    f"the {side} credentials are not valid at {storage.endpoint_url} "
                    f"({refused}): {CREDENTIAL_HINTS.get(refused, CREDENTIAL_HINTS[''])}"
                )
    return missing


CREDENTIAL_HINTS = {
    "ExpiredToken": "the session token has expired: get new temporary credentials "
    "(aws sso login, aws sts assume-role...)",
    "InvalidToken": "the session token is not valid: check AWS_SESSION_TOKEN, or unset it for long-term keys",
    "TokenRefreshRequired": "the session token must be refreshed: get new temporary credentials",
    "": "check the access key and secret, or the credentials block",
}


def _unreachable(side: str, url: str, bucket: str, error: S3Error, tries: int) -> str:
    """Why an endpoint could not be asked about a bucket, in the user's words."""
    host = urlsplit(url).hostname or url
    if error.code in ("ConnectionError", "Timeout"):
        try:
            socket.getaddrinfo(host, None)
        except OSError:
            return (
                f"the {side} S3 endpoint's host {host!r} does not resolve ({url}): check "
                "AWS_ENDPOINT_URL or the credentials block's endpoint"
            )
        return (
            f"cannot reach the {side} S3 endpoint {url} ({error.code}): check AWS_ENDPOINT_URL "
            "or the credentials block's endpoint, and that the server is up"
        )
    return (
        f"the {side} S3 endpoint {url} answered {error.code} for the bucket {bucket!r} "
        f"{tries} times: {error.message or 'no message'}; nothing was copied, try again later"
    )


class Batcher:
    """Groups work into batches of at most batch_files files and batch_bytes bytes
    (a larger object is a batch of its own); copies and deletes go in separate batches.
    Nothing planned is ever dropped: `flush` hands out what is still open."""

    def __init__(self, config: TransferConfig) -> None:
        self.config = config
        self._open: dict[type, tuple[list, int]] = {}

    def add(self, item: CopyItem | DeleteItem) -> list[list]:
        """The batches `item` closed (none, or one)."""
        kind, full = type(item), []
        batch, size = self._open.get(kind, ([], 0))
        if batch and (len(batch) >= self.config.batch_files or size + item.size > self.config.batch_bytes):
            full.append(batch)
            batch, size = [], 0
        batch.append(item)
        self._open[kind] = (batch, size + item.size)
        return full

    def flush(self) -> list[list]:
        open_batches, self._open = self._open, {}
        return [batch for batch, _ in open_batches.values() if batch]


def batches(items: Iterable[CopyItem | DeleteItem], config: TransferConfig) -> Iterator[list]:
    batcher = Batcher(config)
    for item in items:
        yield from batcher.add(item)
    yield from batcher.flush()


def cancelled_rows(rows: list[ManifestRow], done: int) -> list[FileResult]:
    """One result per manifest row whose planning a cancel stopped (rows[done:]):
    the files of these rows that have no result of their own were not copied."""
    now = time.time()
    results = []
    for index, row in enumerate(rows[done:]):
        if not row.is_prefix:
            why = "the transfer was cancelled before this object was copied"
        elif index == 0:
            why = (
                "the transfer was cancelled while this prefix was being listed: objects below it "
                "without a result of their own were not copied"
            )
        else:
            why = "the transfer was cancelled before this prefix was listed: nothing below it was copied"
        results.append(
            FileResult(
                row.source.uri,
                row.destination.uri,
                CANCELLED,
                started=now,
                ended=now,
                error_code="Cancelled",
                error_message=why,
                line=row.line,
            )
        )
    return results


def _failed(
    source: ObjectRef, destination: ObjectRef, line: int, code: str, message: str, size: int | None = None
) -> FileResult:
    now = time.time()
    return failed(source.uri, destination.uri, code, message, size=size, started=now, ended=now, line=line)


def _skipped(source: ObjectInfo, destination: ObjectRef, line: int, why: str) -> FileResult:
    now = time.time()
    return FileResult(
        source.ref.uri,
        destination.uri,
        SKIPPED,
        size=source.size,
        attempts=0,
        started=now,
        ended=now,
        detail=why,
        etag=source.etag,
        line=line,
    )
