"""A transfer's file-wise status, read back from Prefect's records of its run.

Every copy-batch task run records its files as a table artifact (and the flow
records the files it settled while planning), so the status is known while a
transfer runs; once it has ended, the run's final per-file table is read.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from s3flow.errors import InputError
from s3flow.record import COPIED, STATUSES

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
    final = [t for t in tables if t.key and t.key.endswith("-files")]
    rows = (_rows(final[0]) if final else
            [row for t in tables if (t.description or "").startswith(BATCH_MARK) for row in _rows(t)])
    counts = Counter(row["status"] for row in rows)
    copied = sum(row["size"] or 0 for row in rows if row["status"] == COPIED)
    started = run.start_time or run.expected_start_time
    ended = run.end_time or datetime.now(timezone.utc)
    seconds = (ended - started).total_seconds() if started else 0.0
    return {
        "flow_run_id": str(run.id), "flow_run_name": run.name,
        "state": run.state.type.value if run.state else "UNKNOWN",
        "state_message": run.state.message if run.state else "",
        "complete": bool(final), "files": len(rows),
        "counts": {status: counts.get(status, 0) for status in STATUSES if counts.get(status)},
        "bytes_copied": copied, "seconds": round(seconds, 1),
        "bytes_per_second": round(copied / seconds) if seconds > 0 else 0, "rows": rows,
    }


def _tables(client, run_id: UUID) -> list:
    found, offset = [], 0
    while True:
        page = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                                           type=ArtifactFilterType(any_=["table"])),
            limit=PAGE, offset=offset)
        found.extend(page)
        if len(page) < PAGE:
            return sorted(found, key=lambda a: a.created, reverse=True)
        offset += PAGE


def _rows(artifact) -> list[dict]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else list(data or [])
