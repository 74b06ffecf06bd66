"""A transfer's file-wise status, read back from Prefect's records of its run.

A run records each file's result within seconds of its being decided, as pages of a
few hundred rows ("s3flow file results" table artifacts, flows/live.py), so the
status is complete while a transfer runs, after it ended, and after its process died
(up to the last second of results), for transfers of any size. The run's final
`-files` table is for the UI (its first rows, failures first) and is never read here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
from prefect.client.schemas.sorting import ArtifactSort
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from s3flow.errors import InputError
from s3flow.record import FileResult
from s3flow.report import Summary

BATCH_MARK = "s3flow file results"  # the description of a per-batch table artifact
PAGE = 200  # the API's page size for artifacts


def transfer_status(run_id: str) -> dict:
    try:
        uid = UUID(run_id)
    except ValueError:
        raise InputError(f"{run_id!r} is not a flow run id (a UUID, as `prefect flow-run ls` shows)") from None
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uid)
        except ObjectNotFound:
            raise InputError(f"no flow run {run_id} on the Prefect API at {PREFECT_API_URL.value()}") from None
        tables = _tables(client, uid)
    rows = [row for t in tables if (t.description or "").startswith(BATCH_MARK) for row in _rows(t)]
    final = bool(run.state and run.state.is_final())
    summary = Summary()  # the one summary every view reads
    summary.add(FileResult.from_row(row) for row in rows)
    counts = summary.counts()
    copied = summary.bytes_copied
    started = run.start_time or run.expected_start_time
    ended = run.end_time or datetime.now(UTC)
    seconds = (ended - started).total_seconds() if started else 0.0
    return {
        "flow_run_id": str(run.id),
        "flow_run_name": run.name,
        "state": run.state.type.value if run.state else "UNKNOWN",
        "state_message": run.state.message if run.state else "",
        "complete": final,
        "files": len(rows),
        "counts": counts,
        "causes": summary.to_json()["causes"],
        "bytes_copied": copied,
        "seconds": round(seconds, 1),
        "bytes_per_second": round(copied / seconds) if seconds > 0 else 0,
        "lag": summary.lag(),  # replication runs: p50/p99 from event to copy
        "rows": rows,
    }


def _tables(client, run_id: UUID) -> list:
    """The run's table artifacts, oldest first. Pages are read newest first, so pages
    written meanwhile shift the offsets: an artifact seen twice is kept once."""
    found: dict = {}
    offset = 0
    while True:
        page = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), type=ArtifactFilterType(any_=["table"])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=PAGE,
            offset=offset,
        )
        found.update((artifact.id, artifact) for artifact in page)
        if len(page) < PAGE:
            return sorted(found.values(), key=lambda a: a.created)
        offset += PAGE


def _rows(artifact) -> list[dict]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else list(data or [])
