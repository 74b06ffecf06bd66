"""Per-object history: every file result is also in a Prefect event about its objects.

File results go to the server as grouped events, not one event per file: an event costs
the Prefect server about 1 ms of CPU and each related resource 0.2 ms more, which on a
10,000-file transfer was more CPU than the S3 server spent on the copies. So results
are grouped by status and by their destination's *object group*: the object's folder
plus one of GROUPS (16) hash buckets of its name (`s3flow.objects.s3://bucket/folder/#07`). An
event `s3flow.files.<status>` has the destination group as its resource, the sources'
groups (role `source`) and the flow run (role `flow-run`) as related resources, and up
to ROWS_PER_EVENT file rows as payload. A prefix sync keeps names, so its sources fall
in one group per event.

`s3flow history URI` is then one indexed lookup (events with the URI's group as any
resource) and a scan of those events' rows: a 16th of what was recorded in the
object's folder. Events are sent when a group fills, FLUSH_SECONDS after a row was
buffered, and when the transfer ends, so a file shows up within seconds.

| groups per folder | events for 10,000 files sent every second | a lookup reads          |
|-------------------|--------------------------------------------|-------------------------|
| 64 (until 2026-11-30) | about 830: 12 rows each                | 1/64 of the folder's rows |
| 16 (now)          | about 200: 50 rows each                    | 1/16                    |

Rows now go to Prefect within about a second (flows/live.py), not five, so 64 groups
made 4x the events, and the Prefect server's CPU, shared with the copies, went up by
half. Lookups ask for both groups of an object, so events written with 64 stay found.

Prefect keeps events for PREFECT_SERVER_EVENTS_RETENTION_PERIOD (7 days by default):
an audit trail needs it raised on the server (see the README). `--scan-artifacts`
reads the per-file tables instead: complete as long as artifacts are kept, slower.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from s3flow.record import FileResult

log = logging.getLogger(__name__)

EVENT_PREFIX = "s3flow.files."
GROUP = "s3flow.objects."
GROUPS = 16  # hash buckets of names per folder: a history scans 1/16 of the folder's rows
EARLIER_GROUPS = (64,)  # what earlier versions used: their events are looked up too
ROWS_PER_EVENT = 100  # file rows in one event (~50 KB; Prefect takes events up to 1.5 MB)
SOURCE_GROUPS_PER_EVENT = 90  # related resources: Prefect allows 100 per event
FLUSH_SECONDS = 1.0  # a buffered row is sent within this long
KEEP_UNSENT = 20_000  # events kept for the next try while the API is away (2 million rows)
EVENTS_PER_REQUEST = 50

MANUAL_CLI = "manual: s3flow transfer"
MANUAL_RUN = "manual: deployment run"
SCHEDULE = "schedule"
S3_EVENT = "s3 event"
MANIFEST_UPLOAD = "manifest upload"


def run_trigger(manifest: str | None = None) -> str:
    """What started this flow run: a schedule, an S3 event, a manifest upload (with
    the manifest's URI), or a person (`s3flow transfer`, or a deployment run)."""
    run_id = flow_run.id
    if not run_id:
        return MANUAL_CLI
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    if run.auto_scheduled or (run.created_by is not None and run.created_by.type == "SCHEDULE"):
        return SCHEDULE
    if run.created_by is not None and run.created_by.type == "AUTOMATION":
        if manifest is not None:
            return f"{MANIFEST_UPLOAD}: {manifest}"
        return S3_EVENT
    return MANUAL_RUN if run.deployment_id else MANUAL_CLI


def stamped(results: list[FileResult], trigger: str) -> list[FileResult]:
    return [replace(result, trigger=trigger) for result in results]


def group_of(uri: str, groups: int = GROUPS) -> str:
    """The object group of `s3://bucket/folder/name` (a version's too):
    `s3flow.objects.s3://bucket/folder/#NN`."""
    folder, _, name = uri.split("?versionId=", 1)[0].rpartition("/")
    return f"{GROUP}{folder}/#{zlib.crc32(name.encode()) % groups:02d}"


class History:
    """Buffers a run's file rows (FileResult.row()) into grouped events (see the module's
    docstring). Thread-safe: a transfer's batches finish on several threads."""

    def __init__(
        self, run_id: str, send: Callable[[list[dict]], None] | None = None, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.run_id = run_id
        self.send = send or post_events
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, str], tuple[list[dict], set[str]]] = {}
        self._timer: threading.Timer | None = None  # sends what is buffered, once due
        self._unsent: list[dict] = []  # events a send failed on: sent first next time

    def add(self, rows: list[dict]) -> None:
        ready: list[dict] = []
        with self._lock:
            for row in rows:
                key = (row["status"], group_of(row["destination"]))
                grouped, sources = self._groups.setdefault(key, ([], set()))
                source = group_of(row["source"]) if row["source"] else None
                if source and source not in sources and len(sources) >= SOURCE_GROUPS_PER_EVENT:
                    ready.append(self._event(key, grouped, sources))
                    grouped, sources = self._groups[key] = ([], set())
                grouped.append(row)
                if source:
                    sources.add(source)
                if len(grouped) >= ROWS_PER_EVENT:
                    ready.append(self._event(key, grouped, sources))
                    del self._groups[key]
            if self._groups and self._timer is None:
                # The run's context goes along: the timer's thread sends to the same API.
                context = contextvars.copy_context()
                self._timer = threading.Timer(self.flush_seconds, context.run, args=(self._due,))
                self._timer.daemon = True
                self._timer.start()
        if ready:
            self._send(ready)

    def close(self) -> None:
        """Send everything buffered, now; raises if the API refused (kept for a next try)."""
        with self._lock:
            ready = self._unsent + self._drain()
            self._unsent = []
        if ready:
            self._send(ready)

    flush = close

    def _send(self, events: list[dict]) -> None:
        try:
            self.send(events)
        except Exception:
            with self._lock:  # kept, oldest first, for the next flush
                self._unsent = (events + self._unsent)[:KEEP_UNSENT]
            raise

    def _due(self) -> None:
        with self._lock:
            self._timer = None  # before the drain: rows added from here on start a new one
            ready = self._unsent + self._drain()
            self._unsent = []
        try:
            if ready:
                self._send(ready)
        except Exception as exc:  # kept for the next flush
            log.warning("history events of %d groups not recorded yet (kept for the next try): %s", len(ready), exc)

    def _drain(self) -> list[dict]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        events = [self._event(key, rows, sources) for key, (rows, sources) in self._groups.items()]
        self._groups.clear()
        return events

    def _event(self, key: tuple[str, str], rows: list[dict], sources: set[str]) -> dict:
        status, group = key
        related = [{"prefect.resource.id": source, "prefect.resource.role": "source"} for source in sorted(sources)]
        if self.run_id:
            related.append(
                {"prefect.resource.id": f"prefect.flow-run.{self.run_id}", "prefect.resource.role": "flow-run"}
            )
        stamps = [row["end"] or row["start"] for row in rows if row["end"] or row["start"]]
        occurred = max(stamps) if stamps else datetime.now(UTC).isoformat()  # all UTC ISO 8601
        folder, _, bucket_number = group[len(GROUP) :].rpartition("#")
        return {
            "id": str(uuid.uuid4()),
            "occurred": occurred,
            "event": f"{EVENT_PREFIX}{status}",
            "resource": {
                "prefect.resource.id": group,
                "prefect.resource.name": f"{folder} (name group {bucket_number} of {GROUPS})",
            },
            "related": related,
            "payload": {"flow_run_id": self.run_id, "files": rows},
        }


def post_events(events: list[dict]) -> None:
    with get_client(sync_client=True) as client:
        for start in range(0, len(events), EVENTS_PER_REQUEST):
            client.request("POST", "/events", json=events[start : start + EVENTS_PER_REQUEST])


def record_events(results: list[FileResult]) -> None:
    """A few results at once (a replication): grouped, sent now."""
    history = History(str(flow_run.id or ""))
    history.add([result.row() for result in results])
    history.close()


def object_history(uri: str, limit: int = 1000) -> list[dict]:
    """Every recorded file result with `uri` as source or destination, newest first."""
    since = (datetime.now(UTC) - timedelta(days=365 * 20)).isoformat()
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    query = {
        "filter": {
            "occurred": {"since": since, "until": until},
            "event": {"prefix": [EVENT_PREFIX]},
            "any_resource": {"id": [group_of(uri, n) for n in (GROUPS, *EARLIER_GROUPS)]},
            "order": "DESC",
        },
        "limit": 50,
    }
    found: list[dict] = []
    with get_client(sync_client=True) as client:
        page = client.request("POST", "/events/filter", json=query).json()
        while True:
            for event in page["events"]:
                found.extend(
                    _entry(row, uri, event["payload"].get("flow_run_id"), event["occurred"])
                    for row in event["payload"].get("files", ())
                    if _touches(row, uri)
                )
            if not page.get("next_page") or len(found) >= limit:
                break
            page = client._client.get(page["next_page"]).json()
    return sorted(found, key=lambda e: e["time"] or "", reverse=True)[:limit]


def _names(recorded: str | None, uri: str) -> bool:
    """The recorded object is `uri`, or a version of it."""
    return recorded is not None and (recorded == uri or recorded.startswith(f"{uri}?versionId="))


def _touches(row: dict, uri: str) -> bool:
    return _names(row.get("source"), uri) or _names(row.get("destination"), uri)


def _entry(row: dict, uri: str, flow_run_id: str | None, fallback_time: str | None) -> dict:
    return {
        "time": row.get("end") or fallback_time,
        "role": "destination" if _names(row["destination"], uri) else "source",
        "flow_run_id": flow_run_id,
        **{
            k: row.get(k)
            for k in (
                "status",
                "trigger",
                "source",
                "destination",
                "attempts",
                "size",
                "etag",
                "checksum",
                "error",
                "detail",
                "line",
            )
        },
    }


def scan_artifacts(uri: str, limit: int = 1000) -> list[dict]:
    """The slow, complete path: every per-file table artifact, read in full."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    from s3flow.flows.status import BATCH_MARK

    found: list[dict] = []
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["table"])), limit=200, offset=offset
            )
            for artifact in page:
                if not (artifact.description or "").startswith(BATCH_MARK):
                    continue
                rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
                found.extend(_entry(row, uri, str(artifact.flow_run_id), None) for row in rows if _touches(row, uri))
            if len(page) < 200:
                break
            offset += 200
    return sorted(found, key=lambda e: e["time"] or "", reverse=True)[:limit]
