"""Completion reports in S3: the per-file record that outlives Prefect.

Prefect keeps events for days and its database is pruned; a regulator asks years
later. So a run with `--report s3://bucket/prefix/` writes, under
`<prefix><transfer>/<flow run id>/`:

| object          | what                                                                  |
|-----------------|-----------------------------------------------------------------------|
| `files.csv.gz`  | one row per file (COLUMNS): source and its version, destination, size, both ETags, checksum, the manifest's md5/sha256, the evidence that proved the copy, status, attempts, times, error, trigger, flow run |
| `summary.json`  | counts, bytes, seconds, state, s3flow's version, the manifest's URI, ETag and SHA-256, and the SHA-256 of `files.csv.gz` (so the two prove each other) |

Both are written at the end of the run and every `every` seconds while it runs (state
"running"), so a crash still leaves a report of what was done. The final write can
carry an Object Lock retention (GOVERNANCE or COMPLIANCE, N days).

`load` reads reports back with pandas, for `s3flow history --reports` and analysts:
each report is fetched and parsed once (16 at a time); the rows of all reports read so
far are kept in one local table with each report's ETag, so asking again costs one
listing, that table, and only the reports that are new or have changed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from .errors import InputError, S3Error
from .record import COPIED, FileResult, ObjectRef

if TYPE_CHECKING:
    import pandas as pd

    from .storage import ObjectInfo, Storage

log = logging.getLogger("s3flow.audit")

FILES, SUMMARY = "files.csv.gz", "summary.json"
# A long run rewrites its report this often (S3FLOW_REPORT_SECONDS overrides it).
EVERY_SECONDS = float(os.environ.get("S3FLOW_REPORT_SECONDS") or 300.0)
COLUMNS = (
    "source",
    "source_version",
    "destination",
    "size",
    "source_etag",
    "destination_etag",
    "checksum_algorithm",
    "checksum",
    "md5",
    "sha256",
    "evidence",
    "status",
    "attempts",
    "start",
    "end",
    "error_code",
    "error_message",
    "detail",
    "line",
    "trigger",
    "flow_run_id",
)
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class Retention:
    """An Object Lock retention for the report's final objects."""

    mode: str
    days: int

    @classmethod
    def parse(cls, text: str | None) -> Retention | None:
        """ "COMPLIANCE:3650" (mode:days) or "3650" (GOVERNANCE); None or "" for none."""
        if not text:
            return None
        mode, _, days = text.rpartition(":")
        mode = (mode or "GOVERNANCE").upper()
        if mode not in LOCK_MODES or not days.isdigit() or int(days) < 1:
            raise InputError(
                f"report retention {text!r}: expected MODE:DAYS with MODE one of {', '.join(LOCK_MODES)} "
                "and DAYS at least 1, e.g. COMPLIANCE:3650"
            )
        return cls(mode, int(days))

    def put_args(self) -> dict:
        until = datetime.now(UTC) + timedelta(days=self.days)
        return {"ObjectLockMode": self.mode, "ObjectLockRetainUntilDate": until}


def report_prefix(uri: str) -> ObjectRef:
    """`s3://bucket/prefix/` as a prefix ref (a missing trailing '/' is added)."""
    from .manifest import parse_uri

    try:
        ref = parse_uri(uri)
    except ValueError as exc:
        raise InputError(f"report location: {exc}") from None
    if ref.key and not ref.key.endswith("/"):
        ref = ObjectRef(ref.bucket, ref.key + "/")
    return ref


def check_location(storage: Storage, prefix: ObjectRef) -> None:
    """Before anything is copied: the report's bucket must exist and take our writes."""
    code = storage.bucket_error(prefix.bucket)
    if code:
        raise InputError(
            f"the report bucket {prefix.bucket!r} ({prefix.uri}) cannot be used: {code}; "
            "create it, or give another --report location"
        )


class Report:
    """The report of one run (see the module's table). `add` from any thread."""

    def __init__(
        self,
        storage: Storage,
        prefix: ObjectRef,
        transfer: str,
        flow_run_id: str,
        manifest: str,
        manifest_etag: str = "",
        manifest_sha256: str = "",
        retention: Retention | None = None,
        every: float = EVERY_SECONDS,
    ) -> None:
        self.storage = storage
        self.base = ObjectRef(prefix.bucket, f"{prefix.key}{transfer}/{flow_run_id}/")
        self.flow_run_id = flow_run_id
        self.transfer = transfer
        self.manifest, self.manifest_etag, self.manifest_sha256 = manifest, manifest_etag, manifest_sha256
        self.retention = retention
        self.trigger: str | Callable[[], str] = ""  # what started the run (a callable: looked up late)
        self.started = time.time()
        self._results: list[FileResult] = []
        self._lock = threading.Lock()
        self._written_count = -1
        self._stop = threading.Event()
        self._every = every
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        return self.base.uri

    def add(self, result: FileResult) -> None:
        with self._lock:
            self._results.append(result)

    def start(self) -> Report:
        """Rewrite the report every `every` seconds while the run goes on."""
        self._thread = threading.Thread(target=self._loop, name="s3flow-report", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.write("running")
            except Exception as exc:  # the next write tries again; the final one must work
                log.warning("could not write the report to %s: %s", self.uri, exc)

    def close(self, state: str) -> dict:
        """The final report (state: completed, failed, cancelled); its summary."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        return self.write(state, final=True)

    def write(self, state: str, final: bool = False) -> dict:
        with self._lock:
            results = list(self._results)
        if not final and len(results) == self._written_count:
            return {}
        data, rows = self._csv(results)
        summary = self._summary(results, state, data, rows)
        lock = self.retention.put_args() if final and self.retention else {}
        self.storage.put_bytes(
            ObjectRef(self.base.bucket, self.base.key + FILES),
            data,
            ContentType="text/csv",
            ContentEncoding="gzip",
            **lock,
        )
        self.storage.put_bytes(
            ObjectRef(self.base.bucket, self.base.key + SUMMARY),
            json.dumps(summary, indent=1).encode(),
            ContentType="application/json",
            **lock,
        )
        self._written_count = len(results)
        return summary

    def _trigger(self) -> str:
        return self.trigger() if callable(self.trigger) else self.trigger

    def _csv(self, results: list[FileResult]) -> tuple[bytes, int]:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        trigger = self._trigger()
        for result in results:
            writer.writerow(row(result, trigger, self.flow_run_id).values())
        return gzip.compress(text.getvalue().encode(), mtime=0), len(results)

    def _summary(self, results: list[FileResult], state: str, data: bytes, rows: int) -> dict:
        counts: dict[str, int] = {}
        for result in results:
            counts[str(result.status)] = counts.get(str(result.status), 0) + 1
        return {
            "transfer": self.transfer,
            "flow_run_id": self.flow_run_id,
            "state": state,
            "s3flow_version": _version(),
            "manifest": {"uri": self.manifest, "etag": self.manifest_etag, "sha256": self.manifest_sha256},
            "trigger": self._trigger(),
            "started": _iso(self.started),
            "written": _iso(time.time()),
            "seconds": round(time.time() - self.started, 3),
            "files": rows,
            "counts": counts,
            "bytes_copied": sum(r.size or 0 for r in results if r.status == COPIED),
            "csv": {"key": self.base.key + FILES, "sha256": hashlib.sha256(data).hexdigest(), "rows": rows},
            "retention": None if self.retention is None else {"mode": self.retention.mode, "days": self.retention.days},
        }


def row(result: FileResult, trigger: str, flow_run_id: str) -> dict:
    """One file as a report row (COLUMNS, in order)."""
    source, _, query = result.source.partition("?")
    version = (parse_qs(query).get("versionId") or [""])[0]
    algorithm, _, checksum = result.checksum.partition(":")
    return {
        "source": source,
        "source_version": version,
        "destination": result.destination,
        "size": "" if result.size is None else result.size,
        "source_etag": result.etag,
        "destination_etag": result.destination_etag,
        "checksum_algorithm": algorithm,
        "checksum": checksum,
        "md5": result.md5,
        "sha256": result.sha256,
        "evidence": result.evidence,
        "status": str(result.status),
        "attempts": result.attempts,
        "start": _iso(result.started),
        "end": _iso(result.ended),
        "error_code": result.error_code,
        "error_message": result.error_message,
        "detail": result.detail,
        "line": "" if result.line is None else result.line,
        "trigger": result.trigger or trigger,
        "flow_run_id": flow_run_id,
    }


def _iso(stamp: float | None) -> str:
    return "" if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


def _version() -> str:
    try:
        return package_version("s3flow")
    except PackageNotFoundError:
        return "unknown"


# --- reading reports back ---------------------------------------------------------

CACHE = Path(os.environ.get("S3FLOW_CACHE", Path.home() / ".cache" / "s3flow")) / "reports"


def load(storage: Storage, prefix: ObjectRef, cache: Path | None = CACHE, workers: int = 16) -> pd.DataFrame:
    """Every report's rows under a prefix, as one DataFrame (COLUMNS, plus `report`: the
    report's URI). Each report is fetched and parsed once: the rows of every report read
    so far are kept in one table in `cache` (pickled, with each report's ETag), so a
    later call costs one listing, loading that table, and the reports that are new or
    were rewritten since (a running transfer's)."""
    import pandas as pd

    found: dict[str, ObjectInfo] = {}
    token = None
    while True:
        objects, token = storage.list_page(prefix.bucket, prefix.key, token)
        found.update((info.ref.uri, info) for info in objects if info.ref.key.endswith("/" + FILES))
        if not token:
            break
    index = _index_path(cache, prefix)
    known, table = _read_index(index)
    fresh = [info for uri, info in found.items() if known.get(uri) != info.etag]

    def frame(info: ObjectInfo) -> pd.DataFrame:
        data = storage.get_bytes(info.ref)
        rows = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype=str, keep_default_na=False, compression=None)
        rows["report"] = info.ref.uri
        return rows

    with ThreadPoolExecutor(workers) as pool:
        frames = list(pool.map(frame, fresh))
    keep = {uri for uri in found if known.get(uri) == found[uri].etag}
    parts = ([table[table["report"].isin(keep)]] if table is not None and keep else []) + frames
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*COLUMNS, "report"])
    if index is not None and (fresh or len(keep) != len(known)):
        _write_index(index, {uri: info.etag for uri, info in found.items()}, result)
    return result


def _index_path(cache: Path | None, prefix: ObjectRef) -> Path | None:
    if cache is None:
        return None
    return cache / f"{hashlib.sha256(prefix.uri.encode()).hexdigest()[:24]}.pkl"


def _read_index(path: Path | None) -> tuple[dict[str, str], pd.DataFrame | None]:
    """The cached table of a prefix's reports, and the ETag each was read at."""
    import pickle

    if path is None or not path.exists():
        return {}, None
    try:
        with path.open("rb") as cached:
            saved = pickle.load(cached)  # our own file, written by _write_index
        return saved["etags"], saved["table"]
    except Exception as exc:  # a damaged or older cache: read everything again
        log.debug("report cache %s: %s", path, exc)
        return {}, None


def _write_index(path: Path, etags: dict[str, str], table: pd.DataFrame) -> None:
    import pickle

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.part")
        with temporary.open("wb") as out:
            pickle.dump({"etags": etags, "table": table}, out, protocol=pickle.HIGHEST_PROTOCOL)
        temporary.replace(path)
    except OSError as exc:  # a cache we cannot write only costs speed
        log.debug("report cache %s: %s", path, exc)


def history(table: pd.DataFrame, uri: str) -> pd.DataFrame:
    """The rows about one object (as source or destination; `s3://bucket/key`), oldest first."""
    base = uri.partition("?")[0]
    mine = table[(table["source"] == base) | (table["destination"] == base)]
    return mine.sort_values(["start", "end"], kind="stable")


def fetch_error(exc: S3Error, prefix: ObjectRef) -> InputError:
    return InputError(f"cannot read the reports under {prefix.uri}: {exc.code}: {exc.message or exc.describe()}")
