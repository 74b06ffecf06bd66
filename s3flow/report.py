"""Views of the file results: the summary, its JSON, markdown and text forms."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from .record import CANCELLED, COPIED, DELETED, FAILED, SKIPPED, FileResult

TOP_FAILURES = 20
KEEP_FAILURES = 1000  # failed files a summary lists; every one is in the per-file tables


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

    def add(self, results: Iterable[FileResult]) -> None:
        for result in results:
            self.files += 1
            if result.status == COPIED:
                self.copied += 1
                self.bytes_copied += result.size or 0
            elif result.status == SKIPPED:
                self.skipped += 1
            elif result.status == DELETED:
                self.deleted += 1
            elif result.status == FAILED:
                self.failed += 1
                if len(self.failures) < KEEP_FAILURES:  # the rest are in the per-file tables
                    self.failures.append(result)
                self.error_codes[result.error_code] += 1
            elif result.status == CANCELLED:
                self.cancelled += 1

    @property
    def rate(self) -> float:
        """Bytes copied per second."""
        return self.bytes_copied / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        """The machine-readable summary `s3flow transfer --json` prints."""
        return {
            "files": self.files, "copied": self.copied, "skipped": self.skipped,
            "failed": self.failed, "deleted": self.deleted, "cancelled": self.cancelled,
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "failures": [{"source": f.source, "destination": f.destination, "error": f.error}
                         for f in self.failures],
            "error_codes": dict(self.error_codes),
        }

    def absorb(self, other: dict) -> None:
        """Add another summary's counts (to_json's form): a shard's, into its transfer's."""
        for name in ("files", "copied", "skipped", "failed", "deleted", "cancelled", "bytes_copied"):
            setattr(self, name, getattr(self, name) + other.get(name, 0))
        for failure in other.get("failures", ()):
            if len(self.failures) < KEEP_FAILURES:
                self.failures.append(FileResult(failure["source"], failure["destination"], FAILED,
                                                error=failure["error"]))
        self.error_codes.update(other.get("error_codes", {}))

    def headline(self) -> str:
        return (f"{self.files} files: {self.copied} copied, {self.skipped} skipped, "
                f"{self.failed} failed, {self.deleted} deleted"
                f"{f', {self.cancelled} cancelled' if self.cancelled else ''}; {human_bytes(self.bytes_copied)} "
                f"in {self.seconds:.1f} s ({self.rate / 1e9:.3f} GB/s)")

    def markdown(self, title: str, links: dict[str, str] | None = None) -> str:
        rows = [("Files", self.files), ("Copied", self.copied), ("Skipped", self.skipped),
                ("Failed", self.failed), ("Deleted", self.deleted),
                *([("Cancelled (not copied)", self.cancelled)] if self.cancelled else []),
                ("Bytes copied", f"{self.bytes_copied:,} ({human_bytes(self.bytes_copied)})"),
                ("Duration", f"{self.seconds:.1f} s"), ("Rate", f"{self.rate / 1e9:.3f} GB/s")]
        lines = [f"# {title}", "", "| Outcome | |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)]
        if self.failures:
            codes = ", ".join(f"{code} x{n}" for code, n in self.error_codes.most_common())
            lines += ["", f"## Failures ({self.failed}: {codes})", "",
                      "| Source | Destination | Error |", "|---|---|---|"]
            lines += [f"| `{f.source}` | `{f.destination}` | {_cell(f.error)} |"
                      for f in self.failures[:TOP_FAILURES]]
            if self.failed > TOP_FAILURES:
                lines.append(f"\n... and {self.failed - TOP_FAILURES} more: see the per-file table.")
        for name, target in (links or {}).items():
            lines.append(f"\n{name}: {target}")
        return "\n".join(lines)


def text(result: dict) -> str:
    """A JSON summary (Summary.to_json) as a terminal prints it."""
    seconds = result["seconds"]
    rate = result["bytes_copied"] / seconds / 1e9 if seconds else 0.0
    names = ("files", "copied", "skipped", "failed", "deleted") + (("cancelled",) if result.get("cancelled") else ())
    lines = [f"{name:<14}{result[name]:>12,}" for name in names]
    lines += [f"{'bytes copied':<14}{human_bytes(result['bytes_copied']):>12}",
              f"{'duration':<14}{seconds:>10.1f} s", f"{'rate':<14}{rate:>7.3f} GB/s"]
    failures = result["failures"]
    lines += [f"FAILED {f['source']} -> {f['destination']}: {f['error']}" for f in failures[:TOP_FAILURES]]
    if result["failed"] > TOP_FAILURES:
        lines.append(f"... and {result['failed'] - TOP_FAILURES} more failures")
    return "\n".join(lines)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
