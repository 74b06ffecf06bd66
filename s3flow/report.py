"""Views of the file results: the summary, its JSON, markdown and text forms."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .record import CANCELLED, COPIED, DELETED, FAILED, SKIPPED, WOULD_COPY, WOULD_DELETE, FileResult

TOP_FAILURES = 20
KEEP_FAILURES = 1000  # failed files a summary lists; every one is in the per-file tables
KEEP_CAUSES = 200  # distinct causes counted apart; the rest are counted under "other causes"


@dataclass
class Cause:
    """Files that failed for one reason: one error code on one destination bucket."""

    code: str
    bucket: str
    count: int = 0
    example: FileResult | None = None

    def line(self) -> str:
        """One line for all of them: `NoSuchBucket x40 (bucket 'x'): message; e.g. a -> b`."""
        e = self.example
        message = e.error_message if e else ""
        if self.count == 1 and e is not None:
            return f"{e.source or '-'} -> {e.destination}: {self.code}: {message}"
        where = f" (destination bucket {self.bucket!r})" if self.bucket else ""
        example = f"; e.g. {e.source or '-'} -> {e.destination}" if e else ""
        return f"{self.code} x{self.count}{where}: {message}{example}"

    def to_json(self) -> dict:
        e = self.example
        return {
            "error_code": self.code,
            "bucket": self.bucket,
            "files": self.count,
            "message": e.error_message if e else "",
            "example": {"source": e.source, "destination": e.destination} if e else None,
        }


@dataclass
class Summary:
    """Counts of a transfer, built up one file result at a time."""

    files: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    cancelled: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    failures: list[FileResult] = field(default_factory=list)
    error_codes: Counter = field(default_factory=Counter)
    causes: dict[tuple[str, str], Cause] = field(default_factory=dict)
    would_copy: int = 0  # dry runs
    would_delete: int = 0
    lags: list[float] = field(default_factory=list)  # replication: event to result, seconds

    def lag(self) -> dict | None:
        """p50 and p99 of the replication lag (event to copy), where files have one."""
        if not self.lags:
            return None
        ordered = sorted(self.lags)
        return {"files": len(ordered), "p50": _quantile(ordered, 0.50), "p99": _quantile(ordered, 0.99)}

    def add(self, results: Iterable[FileResult]) -> None:
        for result in results:
            self.add_one(result)

    def add_one(self, result: FileResult) -> None:
        self.files += 1
        if result.lag is not None and result.status in (COPIED, SKIPPED):
            self.lags.append(result.lag)
        status = result.status
        if status == COPIED:
            self.copied += 1
            self.bytes_copied += result.size or 0
        elif status == FAILED:
            self.failed += 1
            if len(self.failures) < KEEP_FAILURES:  # the rest are in the per-file tables
                self.failures.append(result)
            self.error_codes[result.error_code] += 1
            self._cause(result)
        else:
            name = {
                SKIPPED: "skipped",
                DELETED: "deleted",
                CANCELLED: "cancelled",
                WOULD_COPY: "would_copy",
                WOULD_DELETE: "would_delete",
            }[status]
            setattr(self, name, getattr(self, name) + 1)

    def _cause(self, result: FileResult) -> None:
        key = (result.error_code, result.destination_bucket)
        if key not in self.causes and len(self.causes) >= KEEP_CAUSES:
            key = ("other causes", "")
        cause = self.causes.setdefault(key, Cause(*key, example=result))
        cause.count += 1

    def cause_lines(self, top: int = TOP_FAILURES) -> list[str]:
        """The failures grouped by cause, most files first: one line per cause."""
        ranked = sorted(self.causes.values(), key=lambda cause: -cause.count)
        lines = [cause.line() for cause in ranked[:top]]
        if len(ranked) > top:
            lines.append(f"... and {len(ranked) - top} more causes")
        return lines

    def counts(self) -> dict[str, int]:
        """Files by status, in STATUSES order, statuses with none left out."""
        names = {
            COPIED: "copied",
            SKIPPED: "skipped",
            FAILED: "failed",
            DELETED: "deleted",
            CANCELLED: "cancelled",
            WOULD_COPY: "would_copy",
            WOULD_DELETE: "would_delete",
        }
        return {str(status): getattr(self, name) for status, name in names.items() if getattr(self, name)}

    @property
    def rate(self) -> float:
        """Bytes copied per second."""
        return self.bytes_copied / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        """The machine-readable summary `s3flow transfer --json` prints."""
        return {
            "files": self.files,
            "copied": self.copied,
            "skipped": self.skipped,
            "failed": self.failed,
            "deleted": self.deleted,
            "cancelled": self.cancelled,
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "failures": [
                {
                    "source": f.source,
                    "destination": f.destination,
                    "error": f.error,
                    "error_code": f.error_code,
                    "error_message": f.error_message,
                }
                for f in self.failures
            ],
            "error_codes": dict(self.error_codes),
            "causes": [cause.to_json() for cause in sorted(self.causes.values(), key=lambda c: -c.count)],
            **({"lag": lag} if (lag := self.lag()) else {}),
        }

    def absorb(self, other: dict) -> None:
        """Add another summary's counts (to_json's form): a shard's, into its transfer's."""
        for name in ("files", "copied", "skipped", "failed", "deleted", "cancelled", "bytes_copied"):
            setattr(self, name, getattr(self, name) + other.get(name, 0))
        for failure in other.get("failures", ()):
            if len(self.failures) < KEEP_FAILURES:
                code, _, message = failure["error"].partition(": ")
                self.failures.append(
                    FileResult(
                        failure["source"], failure["destination"], FAILED, error_code=code, error_message=message
                    )
                )
        self.error_codes.update(other.get("error_codes", {}))
        for cause in other.get("causes", ()):
            example = cause.get("example") or {}
            key = (cause["error_code"], cause["bucket"])
            mine = self.causes.setdefault(
                key,
                Cause(
                    *key,
                    example=FileResult(
                        example.get("source", ""),
                        example.get("destination", ""),
                        FAILED,
                        error_code=cause["error_code"],
                        error_message=cause.get("message", ""),
                    ),
                ),
            )
            mine.count += cause["files"]

    def headline(self) -> str:
        return (
            f"{self.files} files: {self.copied} copied, {self.skipped} skipped, "
            f"{self.failed} failed, {self.deleted} deleted"
            f"{f', {self.cancelled} cancelled' if self.cancelled else ''}; {human_bytes(self.bytes_copied)} "
            f"in {self.seconds:.1f} s ({self.rate / 1e9:.3f} GB/s)"
        )

    def markdown(self, title: str, links: dict[str, str] | None = None) -> str:
        rows = [
            ("Files", self.files),
            ("Copied", self.copied),
            ("Skipped", self.skipped),
            ("Failed", self.failed),
            ("Deleted", self.deleted),
            *([("Cancelled (not copied)", self.cancelled)] if self.cancelled else []),
            ("Bytes copied", f"{self.bytes_copied:,} ({human_bytes(self.bytes_copied)})"),
            ("Duration", f"{self.seconds:.1f} s"),
            ("Rate", f"{self.rate / 1e9:.3f} GB/s"),
            *([("Replication lag, event to copy", lag_text(lag))] if (lag := self.lag()) else []),
        ]
        lines = [f"# {title}", "", "| Outcome | |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)]
        if self.failures:
            codes = ", ".join(f"{code} x{n}" for code, n in self.error_codes.most_common())
            lines += ["", f"## Failures ({self.failed}: {codes})", "", "| Files | Cause |", "|---:|---|"]
            lines += [
                f"| {cause.count:,} | {_cell(cause.line())} |"
                for cause in sorted(self.causes.values(), key=lambda c: -c.count)[:TOP_FAILURES]
            ]
            lines.append("\nEvery failed file is in the per-file table.")
        for name, target in (links or {}).items():
            lines.append(f"\n{name}: {target}")
        return "\n".join(lines)


def text(result: dict) -> str:
    """A JSON summary (Summary.to_json) as a terminal prints it."""
    seconds = result["seconds"]
    rate = result["bytes_copied"] / seconds / 1e9 if seconds else 0.0
    names = ("files", "copied", "skipped", "failed", "deleted") + (("cancelled",) if result.get("cancelled") else ())
    lines = [f"{name:<14}{result[name]:>12,}" for name in names]
    lines += [
        f"{'bytes copied':<14}{human_bytes(result['bytes_copied']):>12}",
        f"{'duration':<14}{seconds:>10.1f} s",
        f"{'rate':<14}{rate:>7.3f} GB/s",
    ]
    if result.get("lag"):
        lines.append(f"{'lag':<14}{lag_text(result['lag'])}")
    causes = result.get("causes") or []
    for cause in causes[:TOP_FAILURES]:
        example = cause.get("example") or {}
        if cause["files"] == 1:
            lines.append(
                f"FAILED {example.get('source') or '-'} -> {example.get('destination')}: "
                f"{cause['error_code']}: {cause['message']}"
            )
        else:
            lines.append(
                f"FAILED {cause['files']:,} files: {cause['error_code']}"
                + (f" (destination bucket {cause['bucket']!r})" if cause["bucket"] else "")
                + f": {cause['message']}; e.g. {example.get('source') or '-'} -> "
                f"{example.get('destination')}"
            )
    if len(causes) > TOP_FAILURES:
        lines.append(f"... and {len(causes) - TOP_FAILURES} more causes")
    return "\n".join(lines)


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank), seconds to 3 places."""
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 3)


def lag_text(lag: dict) -> str:
    return f"p50 {lag['p50']:.1f} s, p99 {lag['p99']:.1f} s (event to copy, {lag['files']:,} files)"


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
