"""One transfer spread over a work pool: shards, each its own flow run.

| step   | where                | what                                                          |
|--------|----------------------|---------------------------------------------------------------|
| cut    | the transfer's run   | lists each prefix row's source once and cuts the listing into  |
|        |                      | runs of `shard_files` objects, each "the N objects listed after |
|        |                      | key K" (object rows go in groups); it keeps boundaries, not keys |
| run    | any worker of the    | `transfer-shard` copies its rows and ranges as transfer-manifest |
|        | pool                 | does: same planner, copier, batch tables, history events, resume |
| gather | the transfer's run   | waits for every shard, adds their counts into the transfer's   |
|        |                      | summary, tables the shards (run, state, counts), and ends      |
|        |                      | Failed if any file or any shard failed                         |

A transfer of at most `shard_files` files is never split: it runs in one run, as
without sharding. A shard's range follows the store's own listing order (ListObjectsV2
StartAfter), which is not always key order (SeaweedFS lists directory by directory),
so shards never depend on it; each keeps only its own objects' destinations in
memory. A sync with `delete` is not split (it needs the whole destination listing to
know what the source lacks): it runs in one run. Cancelling the transfer's run
cancels its shards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.deployments import run_deployment
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run
from prefect.states import Cancelling, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from s3flow.flows.history import run_trigger
from s3flow.flows.notify import notify_failure, run_link, run_path, ui_link
from s3flow.flows.transfer import BATCHES_IN_FLIGHT, CONCURRENCY_LIMIT, open_transfer, run_transfer
from s3flow.manifest import ManifestRow
from s3flow.record import ObjectRef
from s3flow.report import TOP_FAILURES, Summary
from s3flow.retry import Retrier
from s3flow.transfer import Transfer

WAIT_EVERY = 2.0  # seconds between looks at the shards' states


def shard_base(parent_base: str, number: int) -> str:
    return f"{parent_base}-shard-{number:04d}"


def shards_of(job: Transfer, shard_files: int) -> Iterator[list[dict]]:
    """The job's rows cut into shards of about `shard_files` files, as run parameters;
    listings stream, so only the current shard's rows are held."""
    retrier = Retrier(job.config)
    current: list[dict] = []
    count = 0
    for row in job.rows:
        if not row.is_prefix:
            current.append(_params(row))
            count += 1
        else:
            after, token, taken = None, None, 0
            while True:
                objects, token = retrier.call(job.source.list_page, row.source.bucket, row.source.key, token)
                for info in objects:
                    count += 1
                    taken += 1
                    if count >= shard_files:
                        current.append(_params(row, after, taken))
                        yield current
                        current, count, taken = [], 0, 0
                        after = info.ref.key[len(row.source.key) :]
                if not token:
                    break
            if taken or after is None:  # the rest of the prefix (all of it if it was empty)
                current.append(_params(row, after, None))
        if count >= shard_files:
            yield current
            current, count = [], 0
    if current:
        yield current


def _params(row: ManifestRow, after: str | None = None, count: int | None = None) -> dict:
    return {
        "line": row.line,
        "source_bucket": row.source.bucket,
        "source_key": row.source.key,
        "version_id": row.source.version_id,
        "destination_bucket": row.destination.bucket,
        "destination_key": row.destination.key,
        "after": after,
        "count": count,
        "expected": [list(pair) for pair in row.expected],
    }


def _row(params: dict) -> ManifestRow:
    return ManifestRow(
        params["line"],
        ObjectRef(params["source_bucket"], params["source_key"], params.get("version_id")),
        ObjectRef(params["destination_bucket"], params["destination_key"]),
        params.get("after"),
        params.get("count"),
        tuple((name, value) for name, value in params.get("expected") or ()),
    )


@flow(name="transfer-shard", task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_IN_FLIGHT))
def transfer_shard(
    manifest: str,
    rows: list[dict],
    number: int,
    parent_base: str,
    options: dict,
    trigger: str = "",
    concurrency_limit: str = CONCURRENCY_LIMIT,
):
    """One shard of a transfer (see flows/shard.py): its rows and key ranges, copied as
    transfer-manifest copies, with its own per-file records."""
    started = time.time()
    job = open_transfer(manifest, options, rows=[_row(params) for params in rows])
    return run_transfer(
        job,
        shard_base(parent_base, number),
        started,
        concurrency_limit=concurrency_limit,
        prices=None,
        notification_block=None,
        trigger=trigger,
        counts_key=f"{shard_base(parent_base, number)}-counts",
    )


def transfer_in_shards(
    shards: Iterator[list[dict]],
    manifest: str,
    base: str,
    options: dict,
    deployment: str,
    started: float,
    notification_block: str | None,
):
    """Start a run of `deployment` per shard as the cut goes, wait for all, gather them."""
    logger = get_run_logger()
    trigger = run_trigger(manifest)
    runs = []
    try:
        for number, rows in enumerate(shards, 1):
            run = run_deployment(
                deployment,
                timeout=0,
                as_subflow=True,
                parameters={
                    "manifest": manifest,
                    "rows": rows,
                    "number": number,
                    "parent_base": base,
                    "options": options,
                    "trigger": trigger,
                },
            )
            runs.append(run)
            logger.info("shard %d: %d rows, flow run %s", number, len(rows), run.id)
        finals = _wait(runs)
    except (TerminationSignal, KeyboardInterrupt):
        _cancel(runs)
        raise
    summary, table, broken = Summary(), [], []
    for number, run in enumerate(finals, 1):
        counts = _counts(run.id, f"{shard_base(base, number)}-counts")
        if counts:
            summary.absorb(counts)
        if (
            not counts
            or run.state.type.value not in ("COMPLETED", "FAILED")
            or (run.state.is_failed() and not counts.get("failed"))
        ):
            broken.append(f"shard {number} ({run.state.name})")
        table.append(
            {
                "shard": number,
                "state": run.state.name,
                "flow_run": str(run.id),
                "link": ui_link(run.id),
                **{
                    k: (counts or {}).get(k)
                    for k in ("files", "copied", "skipped", "failed", "deleted", "bytes_copied", "seconds")
                },
            }
        )
    summary.seconds = time.time() - started
    create_table_artifact(
        key=f"{base}-shards", table=table, description=f"The {len(table)} shards of {manifest}: {summary.headline()}"
    )
    create_markdown_artifact(
        key=f"{base}-summary",
        description=f"Summary of {manifest} ({len(table)} shards)",
        markdown=summary.markdown(
            f"Transfer {manifest} in {len(table)} shards",
            {
                "Shards (each with its per-file table)": f"artifact `{base}-shards`",
                "Flow run": f"[{flow_run.id}]({run_path()})",
            },
        ),
    )
    logger.info("%d shards: %s", len(table), summary.headline())
    result = {**summary.to_json(), "flow_run_id": str(flow_run.id or "")}
    if summary.failed or broken:
        what = [f"{summary.failed} of {summary.files} files failed"] if summary.failed else []
        what += [f"{', '.join(broken)} did not finish"] if broken else []
        message = "; ".join(what) + f": {summary.headline()}"
        unsent = notify_failure(
            notification_block, f"transfer-manifest: {message}", _failure_body(summary, manifest, base, message)
        )
        return Failed(message=message + (f"; {unsent}" if unsent else ""), data=result)
    return result


def _wait(runs: list) -> list:
    """The shards' runs, once every one is in a final state."""
    with get_client(sync_client=True) as client:
        while True:
            finals = [client.read_flow_run(run.id) for run in runs]
            if all(run.state is not None and run.state.is_final() for run in finals):
                return finals
            time.sleep(WAIT_EVERY)


def _cancel(runs: list) -> None:
    with get_client(sync_client=True) as client:
        for run in runs:
            try:
                current = client.read_flow_run(run.id)
                if current.state is None or not current.state.is_final():
                    client.set_flow_run_state(run.id, Cancelling(message="its transfer was cancelled"), force=True)
            except Exception as exc:  # the others still get their cancel
                get_run_logger().warning("could not cancel shard run %s: %s", run.id, exc)


def _counts(run_id, key: str) -> dict | None:
    """A shard's summary (Summary.to_json), from the counts artifact it left."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])
            )
        )
    if not found:
        return None
    data = found[0].data
    rows = json.loads(data) if isinstance(data, str) else data
    row = rows[0]
    return {
        **row,
        "failures": json.loads(row.get("failures") or "[]"),
        "error_codes": json.loads(row.get("error_codes") or "{}"),
        "causes": json.loads(row.get("causes") or "[]"),
    }


def _failure_body(summary: Summary, manifest: str, base: str, message: str) -> str:
    lines = [
        message,
        "",
        f"Manifest: {manifest}",
        "",
        "Failed files, by cause:",
        *(f"  - {line}" for line in summary.cause_lines(TOP_FAILURES)),
        "",
        f"Flow run: {flow_run.id}",
        f"Link: {run_link()}",
        f"Shards: artifact {base}-shards",
    ]
    return "\n".join(lines)
