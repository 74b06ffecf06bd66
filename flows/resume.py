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
| any but a live one                | the transfer's `<base>-uploads` tables: started, never completed or aborted | aborts those uploads (AbortMultipartUpload; one already gone is fine) |

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
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import ArtifactSort
from prefect.states import Crashed

from s3flow.copy import UPLOAD_STARTED
from s3flow.errors import S3Error
from s3flow.manifest import parse_uri
from s3flow.storage import Storage

STALE_AFTER = 120.0  # seconds without a progress update: the run's process is gone
RUNS_LOOKED_AT = 200  # the newest runs of a transfer this looks at
HOST_LABEL, PID_LABEL = "s3flow.host", "s3flow.pid"


def uploads_key(base: str) -> str:
    """The key of a transfer's upload tables: every run's versions in one place, so the
    next run reads them all with one query."""
    return f"{base}-uploads"


def settle_earlier_runs(base: str, this_run: UUID | None, destination: Storage, log) -> None:
    """See the module's table: a few queries whatever the number of earlier runs. Never
    fails the run: what it cannot settle is logged."""
    try:
        with get_client(sync_client=True) as client:
            progress = _earlier_runs(client, base)
            for run in _unsettled(client, progress, this_run):
                _settle(client, run, progress[run.id], this_run, log)
            _abort_left_open(client, base, this_run, destination, log)
    except Exception as exc:  # the copies matter more than the clean-up
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


def _unsettled(client, progress: dict[UUID, datetime], this_run: UUID | None) -> list:
    """The earlier runs that may need settling: not final, or Crashed (one query)."""
    others = [run_id for run_id in progress if run_id != this_run]
    if not others:
        return []
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=others),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(
                    any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING, StateType.CRASHED]
                )
            ),
        ),
        limit=RUNS_LOOKED_AT,
    )


def _settle(client, run, progress_updated: datetime, this_run: UUID | None, log) -> None:
    state = run.state
    if state is None:
        return
    if not state.is_final():
        age = (datetime.now(UTC) - progress_updated).total_seconds()
        gone = _process_gone(run.labels or {})
        if not gone and age < STALE_AFTER:
            log.warning(
                "run %s of this transfer is still running (progress %.0f s ago): its files are "
                "copied once all the same, as both skip what is already there",
                run.id,
                age,
            )
            return
        why = gone or f"no progress for {age:.0f} s"
        client.set_flow_run_state(
            run.id, Crashed(message=f"its process stopped ({why}); resumed by run {this_run}"), force=True
        )
        log.warning(
            "run %s of this transfer was %s (%s): marked Crashed; this run resumes it", run.id, state.type.value, why
        )
    elif state.is_crashed() and "resumed by" not in (state.message or ""):
        message = f"{state.message or 'crashed'}; resumed by run {this_run}"
        client.set_flow_run_state(run.id, Crashed(message=message), force=True)
        log.warning("run %s of this transfer crashed: this run resumes it", run.id)


def _abort_left_open(client, base: str, this_run: UUID | None, destination: Storage, log) -> None:
    """Abort every upload a run of this transfer recorded as started and never closed,
    except those of runs still alive."""
    alive = {
        run.id
        for run in _unsettled(client, _earlier_runs(client, base), this_run)
        if run.state is not None and not run.state.is_final()
    }
    aborted = 0
    for run_id, destination_uri, upload_id in open_uploads(client, base):
        if run_id in alive:
            continue
        try:
            destination.abort_multipart(parse_uri(destination_uri), upload_id)
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
        log.warning("aborted %d multipart uploads that earlier runs of this transfer left open", aborted)


def claim(run_id: UUID | None) -> None:
    """Label this run with its machine and process, so a later run on the same machine
    knows at once when this process is gone (a SIGKILL leaves the run RUNNING)."""
    if run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(run_id, {HOST_LABEL: socket.gethostname(), PID_LABEL: str(os.getpid())})
    except Exception:  # without the labels, staleness still tells
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


def open_uploads(client, base: str) -> list[tuple[UUID, str, str]]:
    """(run, destination, upload id) of every upload a run of this transfer recorded as
    started and never as completed or aborted."""
    tables: list = []
    offset = 0
    while True:
        page = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[uploads_key(base)])), limit=200, offset=offset
        )
        tables.extend(page)
        if len(page) < 200:
            break
        offset += 200
    latest: dict[str, tuple[str, UUID, str]] = {}
    for artifact in sorted(tables, key=lambda a: a.created):  # the last event of an upload wins
        rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        for row in rows or ():
            latest[row["upload_id"]] = (row["event"], artifact.flow_run_id, row["destination"])
    return [(run, where, upload) for upload, (event, run, where) in latest.items() if event == UPLOAD_STARTED]
