"""One record per file: the currency between engine, flows and every report."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

COPIED = "copied"
SKIPPED = "skipped"
FAILED = "failed"
DELETED = "deleted"
WOULD_COPY = "would-copy"  # dry run: what a transfer would do
WOULD_DELETE = "would-delete"
CANCELLED = "cancelled"  # the transfer was cancelled before this file was done: nothing written
STATUSES = (COPIED, SKIPPED, FAILED, DELETED, CANCELLED, WOULD_COPY, WOULD_DELETE)


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
    """What happened to one file. Deletions have the deleted object as destination."""

    source: str
    destination: str
    status: str
    size: int | None = None
    attempts: int = 0
    started: float | None = None  # epoch seconds
    ended: float | None = None
    error: str = ""  # "<S3 code>: message" for failures
    detail: str = ""  # why skipped, how copied
    etag: str = ""  # the source's ETag the copy was pinned to
    line: int | None = None  # the manifest line that asked for it
    parts: int = 0  # requests that wrote the data: 1 CopyObject, N part copies (0: none)
    checksum: str = ""  # "CRC32C:<base64>" S3 computed for the copy ("-N": of N parts), if it did
    trigger: str = ""  # what started the run: schedule, s3 event, manifest upload: URI, manual: ...

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round(self.ended - self.started, 3)

    @property
    def error_code(self) -> str:
        return self.error.split(":", 1)[0] if self.error else ""

    def row(self) -> dict:
        """The file as one row of the per-file table (times in UTC ISO 8601). Status comes
        first, so the UI's table shows it without scrolling sideways."""
        return {
            "status": self.status, "source": self.source, "destination": self.destination,
            "size": self.size, "attempts": self.attempts, "start": _iso(self.started),
            "end": _iso(self.ended), "seconds": self.seconds, "error": self.error,
            "detail": self.detail, "parts": self.parts, "etag": self.etag, "checksum": self.checksum,
            "trigger": self.trigger,
            "line": self.line,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _iso(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="milliseconds")
