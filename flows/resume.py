"""What a run of a transfer does first about the runs of it that came before.

Runs of one transfer share artifact keys (flows/transfer.py: artifact_base), so the
`<base>-progress` artifact's versions name every earlier run. A run whose process
died (SIGKILL, OOM, a lost machine) leaves two things behind, and the next run of the
same transfer settles both before it copies anything:

| earlier run                       | how it is told                                  | what this run does                       |
|-----------------------------------|-------------------------------------------------|------------------------------------------|
| not final, its process is gone    | on this machine: the process its labels name (s3flow.host, s3flow.pid) no longer exists | marks it Crashed, naming this run as the one that resumes it |
| not final, progress long still    | elsewhere: its progress artifact has not moved for STALE_AFTER (a live run moves it every 10 s) | the same |
| not final, otherwise              | alive                                           | nothing (logged)                         |
| final (Crashed by the heartbeat automation, Failed, Cancelled...) | its state | adds "resumed by" to a Crashed run's message |
| any final one                     | its "s3flow multipart uploads" tables: started, never completed or aborted | aborts those uploads (AbortMultipartUpload; one already gone is fine) |

Only uploads a run of this transfer recorded are aborted: an upload some other writer
started is never touched (`s3flow uploads abort --older-than` is for those).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
)
from prefect.client.schemas.sorting import ArtifactSort
from prefect.states import Crashed

from s3flow.copy import UPLOAD_STARTED
from s3flow.errors import S3Error
from s3flow.flows.live import UPLOADS_MARK
from s3flow.manifest import parse_uri
from s3flow.storage import Storage

STALE_AFTER = 120.0  # seconds without a progress update: the run's process is gone
RUNS_LOOKED_AT = 200  # the newest runs of a transfer this looks at
HOST_LABEL, PID_LABEL = "s3flow.host", "s3flow.pid"


def settle_earlier_runs(base: str, this_run: UUID | None, destination: Storage, log) -> None:
    """See the module's table. Never fails the run: what it cannot settle is logged."""
    try:
        with get_client(sync_client=True) as client:
            runs = _earlier_runs(client, base)
            for run_id, progress_updated in runs.items():
                _settle(client, run_id, progress_updated, this_run, destination, log)
    except Exception as exc:
        log.warning("could not look at earlier runs of this transfer: %s", exc)


def _earlier_runs(client, base: str) -> dict[UUID, datetime]:
    """Flow run id -> when its progress artifact last moved, for the newest runs."""
    found: dict[UUID, datetime] = {}
    for artifact in client.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"{base}-progress"])),
        sort=ArtifactSort.CREATED_DESC,
        limit=RUNS_LOOKED_AT,
    ):
        if artifact.flow_run_id is None:
            continue
        updated = artifact.updated or artifact.created
        if updated is not None and (artifact.flow_run_id not in found or updated > found[artifact.flow_run_id]):
            found[artifact.flow_run_id] = updated
    return found


def _settle(client, run_id: UUID, progress_updated: datetime, this_run: UUID | None, destination: Storage, log) -> None:
    run = client.read_flow_run(run_id)
    state = run.state
    if run_id != this_run and state is not None and not state.is_final():
        age = (datetime.now(UTC) - progress_updated).total_seconds()
        gone = _process_gone(run.labels or {})
        if not gone and age < STALE_AFTER:
            log.warning(
                "run %s of this transfer is still running (progress %.0f s ago): its files are "
                "copied once all the same, as both skip what is already there",
                run_id,
                age,
            )
            return
        why = gone or f"no progress for {age:.0f} s"
        message = f"its process stopped ({why}); resumed by run {this_run}"
        client.set_flow_run_state(run_id, Crashed(message=message), force=True)
        log.warning(
            "run %s of this transfer was %s with no progress for %.0f s: marked Crashed; this run resumes it",
            run_id,
            state.type.value,
            age,
        )
    elif run_id != this_run and state is not None and state.is_crashed() and "resumed by" not in (state.message or ""):
        client.set_flow_run_state(
            run_id, Crashed(message=f"{state.message or 'crashed'}; resumed by run {this_run}"), force=True
        )
        log.warning("run %s of this transfer crashed: this run resumes it", run_id)
    aborted = 0
    for destination_uri, upload_id in open_uploads(client, run_id):
        ref = parse_uri(destination_uri)
        try:
            destination.abort_multipart(ref, upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":  # else: gone already (an earlier clean-up, a lifecycle rule)
                log.warning(
                    "could not abort the multipart upload %s of %s that run %s left: %s",
                    upload_id,
                    destination_uri,
                    run_id,
                    exc,
                )
            continue
        aborted += 1
        log.info("aborted the multipart upload %s of %s that run %s left open", upload_id, destination_uri, run_id)
    if aborted:
        log.warning("aborted %d multipart uploads that run %s left open", aborted, run_id)


def claim(run_id: UUID | None) -> None:
    """Label this run with its machine and process, so a later run on the same machine
    knows at once when this process is gone (a SIGKILL leaves the run RUNNING)."""
    if run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(run_id, {HOST_LABEL: socket.gethostname(), PID_LABEL: str(os.getpid())})
    except Exception:
        pass


def _process_gone(labels: dict) -> str:
    """Why the labelled process is known to be gone ("" if it may be alive)."""
    host, pid = labels.get(HOST_LABEL), str(labels.get(PID_LABEL) or "")
    if host != socket.gethostname() or not pid.isdigit():
        return ""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return f"process {pid} on {host} no longer exists"
    except PermissionError:
        return ""
    return ""


def open_uploads(client, run_id: UUID) -> list[tuple[str, str]]:
    """(destination, upload id) of every upload the run recorded as started and never
    as completed or aborted, by any of its attempts or by a later run's clean-up."""
    state: dict[str, tuple[str, str]] = {}
    offset = 0
    while True:
        page = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), type=ArtifactFilterType(any_=["table"])
            ),
            limit=200,
            offset=offset,
        )
        for artifact in sorted(page, key=lambda a: a.created):
            if not (artifact.description or "").startswith(UPLOADS_MARK):
                continue
            rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
            for row in rows or ():
                state[row["upload_id"]] = (row["event"], row["destination"])
        if len(page) < 200:
            break
        offset += 200
    return [(where, upload) for upload, (event, where) in state.items() if event == UPLOAD_STARTED]
