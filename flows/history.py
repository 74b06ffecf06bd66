"""Per-object history: every file result is also a Prefect event about its objects.

Each result becomes one event `s3flow.file.<status>` whose resource is the destination
object (`s3flow.object.s3://bucket/key`), with the source object (role `source`) and the
flow run (role `flow-run`) related, and the file's row as payload. Prefect indexes the
resources of every event, so `s3flow history URI` is two indexed lookups (the URI as
resource, the URI as a related source), however many runs there were: it never reads
a run's per-file table. The events also show in the UI's event feed, filtered by
resource.

Prefect keeps events for PREFECT_SERVER_EVENTS_RETENTION_PERIOD (7 days by default):
an audit trail needs it raised on the server (see the README). `--scan-artifacts`
reads the per-file tables instead: complete as long as artifacts are kept, slower.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from s3flow.record import FileResult

EVENT_PREFIX = "s3flow.file."
OBJECT = "s3flow.object."
EVENTS_PER_REQUEST = 500

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


def record_events(results: list[FileResult]) -> None:
    """One event per file result (see the module's docstring)."""
    run_id = str(flow_run.id or "")
    events = [_event(result, run_id) for result in results]
    with get_client(sync_client=True) as client:
        for start in range(0, len(events), EVENTS_PER_REQUEST):
            client.request("POST", "/events", json=events[start:start + EVENTS_PER_REQUEST])


def _event(result: FileResult, run_id: str) -> dict:
    import uuid

    related = [{"prefect.resource.id": f"{OBJECT}{result.source}", "prefect.resource.role": "source"}] \
        if result.source else []
    if run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "flow-run"})
    occurred = datetime.fromtimestamp(result.ended or result.started or 0, timezone.utc) \
        if (result.ended or result.started) else datetime.now(timezone.utc)
    return {
        "id": str(uuid.uuid4()),
        "occurred": occurred.isoformat(),
        "event": f"{EVENT_PREFIX}{result.status}",
        "resource": {"prefect.resource.id": f"{OBJECT}{result.destination}",
                     "prefect.resource.name": result.destination},
        "related": related,
        "payload": {**result.row(), "flow_run_id": run_id},
    }


def object_history(uri: str, limit: int = 1000) -> list[dict]:
    """Every recorded file result with `uri` as source or destination, newest first."""
    since = (datetime.now(timezone.utc) - timedelta(days=365 * 20)).isoformat()
    until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    found: dict[str, dict] = {}
    with get_client(sync_client=True) as client:
        for where in ({"resource": {"id": [f"{OBJECT}{uri}"]}},
                      {"related": {"resources_in_roles": [[f"{OBJECT}{uri}", "source"]]}}):
            query = {"filter": {"occurred": {"since": since, "until": until},
                                "event": {"prefix": [EVENT_PREFIX]}, **where,
                                "order": "DESC"}, "limit": min(limit, 50)}
            page = client.request("POST", "/events/filter", json=query).json()
            while True:
                for event in page["events"]:
                    found[event["id"]] = _entry(event, uri)
                if not page.get("next_page") or len(found) >= limit:
                    break
                page = client._client.get(page["next_page"]).json()
    return sorted(found.values(), key=lambda e: e["time"], reverse=True)[:limit]


def _entry(event: dict, uri: str) -> dict:
    row = event["payload"]
    return {"time": row.get("end") or event["occurred"], "role": "destination" if row["destination"] == uri
            else "source", **{k: row.get(k) for k in (
                "status", "trigger", "flow_run_id", "source", "destination", "attempts", "size", "etag",
                "checksum", "error", "detail", "line")}}


def scan_artifacts(uri: str, limit: int = 1000) -> list[dict]:
    """The slow, complete path: every per-file table artifact, read in full."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    from flows.status import BATCH_MARK

    found = []
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_artifacts(artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["table"])),
                                         limit=200, offset=offset)
            for artifact in page:
                if not (artifact.description or "").startswith(BATCH_MARK):
                    continue
                rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
                for row in rows:
                    if uri in (row.get("source"), row.get("destination")):
                        found.append({"time": row.get("end"), "role": "destination" if row["destination"] == uri
                                      else "source", "flow_run_id": str(artifact.flow_run_id),
                                      **{k: row.get(k) for k in ("status", "trigger", "source", "destination",
                                                                 "attempts", "size", "etag", "checksum",
                                                                 "error", "detail", "line")}})
            if len(page) < 200:
                break
            offset += 200
    return sorted(found, key=lambda e: e["time"] or "", reverse=True)[:limit]
