"""One record per file: the currency between engine, flows and every report.

Every view (the per-file table, `--json`, artifacts, notifications, `s3flow status`,
history) is a view of `FileResult`; the summary of many is `report.Summary`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Status(StrEnum):
    """What happened to a file. A StrEnum: it compares and serialises as its text."""

    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"
    DELETED = "deleted"
    CANCELLED = "cancelled"  # the transfer was cancelled before this file was done
    WOULD_COPY = "would-copy"  # dry run: what a transfer would do
    WOULD_DELETE = "would-delete"


COPIED, SKIPPED, FAILED, DELETED = Status.COPIED, Status.SKIPPED, Status.FAILED, Status.DELETED
CANCELLED, WOULD_COPY, WOULD_DELETE = Status.CANCELLED, Status.WOULD_COPY, Status.WOULD_DELETE
STATUSES = tuple(Status)
DONE = frozenset({COPIED, SKIPPED, DELETED})  # the file is where it should be


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None  # a source version; None is the current one

    @property
    def uri(self) -> str:
        base = f"s3://{self.bucket}/{self.key}"
        return f"{base}?versionId={self.version_id}" if self.version_id else base

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True)
class FileResult:
    """What happened to one file. Deletions have the deleted object as destination.

    `attempts` counts tries of the file's copy (1 for a clean copy, 1 + each retry of
    one of its requests after a transient error; 0 when nothing was tried, as for a
    skip); `requests` counts every S3 request made for the file (HEADs, parts...)."""

    source: str
    destination: str
    status: Status
    size: int | None = None
    attempts: int = 0
    started: float | None = None  # epoch seconds
    ended: float | None = None
    error_code: str = ""  # S3's error code (or ours: Cancelled, Unexpected, ChecksumMismatch)
    error_message: str = ""
    detail: str = ""  # why skipped, how copied
    etag: str = ""  # the source's ETag the copy was pinned to
    line: int | None = None  # the manifest line that asked for it
    parts: int = 0  # requests that wrote the data: 1 CopyObject, N part copies (0: none)
    checksum: str = ""  # "CRC32C:<base64>" S3 computed for the copy ("-N": of N parts), if it did
    trigger: str = ""  # what started the run: schedule, s3 event, manifest upload: URI, manual: ...
    requests: int = 0
    # What proves the destination holds the source's bytes, "; "-joined: "ETag", "MD5 of
    # every range", "<ALGORITHM> full-object", "expected MD5 = ETag", "expected SHA256 of
    # the bytes read"... ("" for a file not copied or skipped).
    evidence: str = ""
    destination_etag: str = ""  # the copy's ETag, as S3 answered
    md5: str = ""  # the manifest's expected MD5 (hex), if it gave one
    sha256: str = ""  # and SHA-256
    event_time: float | None = None  # replication: when S3 said the object was created (epoch s)

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            object.__setattr__(self, "status", Status(self.status))

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round(self.ended - self.started, 3)

    @property
    def lag(self) -> float | None:
        """Replication lag: from the object's creation event to this result, seconds."""
        if self.event_time is None or self.ended is None:
            return None
        return round(self.ended - self.event_time, 3)

    @property
    def error(self) -> str:
        """ "<code>: <message>", as every view shows it."""
        if not self.error_code:
            return ""
        return f"{self.error_code}: {self.error_message}" if self.error_message else self.error_code

    @property
    def destination_bucket(self) -> str:
        return self.destination.removeprefix("s3://").split("/", 1)[0]

    def row(self) -> dict:
        """The file as one row of the per-file table (times in UTC ISO 8601). Status comes
        first, so the UI's table shows it without scrolling sideways."""
        return {
            "status": str(self.status),
            "source": self.source,
            "destination": self.destination,
            "size": self.size,
            "attempts": self.attempts,
            "start": _iso(self.started),
            "end": _iso(self.ended),
            "seconds": self.seconds,
            "error": self.error,
            "detail": self.detail,
            "parts": self.parts,
            "etag": self.etag,
            "checksum": self.checksum,
            "trigger": self.trigger,
            "line": self.line,
            "requests": self.requests,
            "evidence": self.evidence,
            **({"event_time": _iso(self.event_time), "lag": self.lag} if self.event_time is not None else {}),
        }

    @classmethod
    def from_row(cls, row: dict) -> FileResult:
        """A result back from its row (a table artifact's, an event's)."""
        code, _, message = (row.get("error") or "").partition(": ")
        return cls(
            row.get("source") or "",
            row.get("destination") or "",
            Status(row["status"]),
            size=row.get("size"),
            attempts=row.get("attempts") or 0,
            error_code=code,
            error_message=message,
            detail=row.get("detail") or "",
            etag=row.get("etag") or "",
            line=row.get("line"),
            parts=row.get("parts") or 0,
            checksum=row.get("checksum") or "",
            trigger=row.get("trigger") or "",
            requests=row.get("requests") or 0,
            evidence=row.get("evidence") or "",
            started=_epoch(row.get("start")),
            ended=_epoch(row.get("end")),
            event_time=_epoch(row.get("event_time")),
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "status": str(self.status)}


def failed(source: str, destination: str, code: str, message: str, **fields) -> FileResult:
    """A file that failed before or without a copy; `fields` as FileResult's."""
    return FileResult(source, destination, FAILED, error_code=code, error_message=message, **fields)


def _epoch(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _iso(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")
