"""The transfer-manifest flow: thin Prefect glue around the engine's one loop.

The engine (s3flow.transfer) opens, plans and runs the transfer; here its batches
become copy-batch task runs (the unit of scheduling: a task run costs ~10 ms of
Prefect bookkeeping), each file's result goes to Prefect within seconds
(flows/live.py: the unit of truth), the run holds slots of the global concurrency
limit, and a cancel from the UI reaches the engine.
"""

from __future__ import annotations

import contextvars
import hashlib
import itertools
import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import StateType
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, TerminationSignal
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from s3flow import audit, estimate, options
from s3flow.blocks.credentials import endpoint_from_block
from s3flow.errors import InputError, S3Error
from s3flow.flows.history import History, run_trigger
from s3flow.flows.live import Recorder
from s3flow.flows.notify import artifact_path, notify_failure, run_link, run_path
from s3flow.flows.resume import claim, settle_earlier_runs, uploads_key
from s3flow.manifest import ManifestRow
from s3flow.options import default
from s3flow.report import TOP_FAILURES, Summary, human_bytes
from s3flow.transfer import BATCHES_IN_FLIGHT, CANCEL_GRACE, Batch, HeadStart, Runner, Transfer

SHARD_DEPLOYMENT = default("shard_deployment")  # prefect.yaml's deployment of flows/shard.py
CONCURRENCY_LIMIT = default("concurrency_limit")  # global limit: S3 requests in flight, all runs
CONCURRENCY_LIMIT_SLOTS = 256  # its size when we create it
NOTIFY_FAILURES = 10  # causes listed in a notification
CANCEL_WATCH_WARN = 30.0  # seconds without reaching the API before the cancel watch warns
__all__ = ["BATCHES_IN_FLIGHT", "CANCEL_GRACE", "transfer_manifest"]

_running: dict[str, _Run] = {}  # transfers running in this process, by id


def _heartbeats_without_join() -> None:
    """Prefect joins a sync flow's heartbeat thread at exit, and that thread sleeps in
    1-s steps: about 0.7 s of every `s3flow transfer` spent waiting for nothing. The
    thread is a daemon that checks a stop event between its sleeps and sends nothing
    once the run is final, so it is left to end on its own (Prefect does the same for
    async flows). Heartbeats themselves are unchanged. Only if Prefect's private helper
    is where it was (3.8, 3.9)."""
    from prefect import flow_engine

    original = getattr(flow_engine, "_send_heartbeats", None)
    if original is None or getattr(original, "_s3flow", False):
        return

    def send_heartbeats(engine, join_on_exit: bool = True):
        return original(engine, join_on_exit=False)

    send_heartbeats._s3flow = True  # type: ignore[attr-defined]
    flow_engine._send_heartbeats = send_heartbeats  # type: ignore[attr-defined]


_heartbeats_without_join()
# Transfers the CLI opened (checked) for the run it starts, with their head start, if any.
_opened: dict[str, tuple[Transfer, HeadStart | None]] = {}


@dataclass
class _Run:
    runner: Runner
    batches: dict[int, Batch] = field(default_factory=dict)


def open_transfer(
    manifest: str, values: dict, *, header: bool | None = None, rows: list[ManifestRow] | None = None
) -> Transfer:
    """The checked transfer of these option values (InputError if anything is wrong)."""
    config = options.config_from(values, endpoint_from_block)
    return Transfer.open(manifest, config, header=header, rows=rows)


def opened_key(manifest: str, header: bool | None, values: dict) -> str:
    return json.dumps([manifest, header, options.engine_values(values)], sort_keys=True, default=str)


def hand_over(transfer: Transfer, header: bool | None, values: dict, head_start: HeadStart | None = None) -> None:
    """The CLI's checked transfer, for the run it starts in this process: the run uses
    what was validated (no second manifest read, no second round of HEADs), and adopts
    the copies already begun (s3flow.transfer.HeadStart)."""
    _opened[opened_key(transfer.manifest, header, values)] = (transfer, head_start)


def artifact_base(manifest: str, transfer_name: str | None = None) -> str:
    """Artifact keys of a transfer: the same manifest location, the same keys, so
    every run of one transfer adds to one history in the UI."""
    if transfer_name:
        return _slug(transfer_name)
    stem = PurePosixPath(manifest.rstrip("/")).stem or "manifest"
    digest = hashlib.sha1(manifest.encode("utf-8")).hexdigest()[:8]
    return f"transfer-{_slug(stem)[:40]}-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-") or "transfer"


@task(name="copy-batch", task_run_name="copy-batch-{number}", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def copy_batch(number: int, transfer_id: str) -> dict:
    """Copy one batch of files: the unit of scheduling. Each file's result is recorded
    the moment it is decided (flows/live.py), so this returns only the batch's counts.
    A retry runs only the files that have no result yet: nothing is copied twice."""
    running = _running[transfer_id]
    return running.runner.execute_batch(running.batches[number])


class _TaskRunning:
    """A copy-batch task run as the engine's `Running`."""

    def __init__(self, future, forget) -> None:
        self.future = future
        self._forget = forget

    def wait(self, timeout: float | None) -> bool:
        done = self.future.wrapped_future
        if not done.done():
            self.future.wait(timeout)
        if done.done():
            self._forget()
            return True
        return False


def ensure_concurrency_limit(name: str, slots: int = CONCURRENCY_LIMIT_SLOTS) -> int:
    """The global limit's size, creating it (with `slots`) if it does not exist yet."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(name).limit
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            return slots
        except ObjectAlreadyExists:  # another transfer created it just now
            return client.read_global_concurrency_limit_by_name(name).limit


SUMMARY = """Copy every object a manifest lists (a local path or an s3:// URI).

Object rows copy one object; prefix rows sync a prefix (with `delete`, also removing
destination objects the source no longer has). Ends Completed when every file was
copied or skipped, Failed (with the summary) when any failed."""


@flow(name="transfer-manifest", task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_IN_FLIGHT))
@options.documented(SUMMARY)  # the UI's parameter descriptions: the options table's, as the CLI's help
def transfer_manifest(
    manifest: str,
    delete: bool = default("delete"),
    header: bool | None = default("header"),
    multipart_threshold_mib: int = default("multipart_threshold_mib"),
    part_size_mib: int = default("part_size_mib"),
    max_concurrency: int = default("max_concurrency"),
    part_concurrency: int = default("part_concurrency"),
    max_attempts: int = default("max_attempts"),
    batch_files: int = default("batch_files"),
    source_credentials: str | None = default("source_credentials"),
    destination_credentials: str | None = default("destination_credentials"),
    transfer_name: str | None = default("transfer_name"),
    concurrency_limit: str = default("concurrency_limit"),
    dry_run: bool = default("dry_run"),
    prices: dict[str, float] | None = default("prices"),
    filters: list[str] | None = default("filters"),
    storage_class: str | None = default("storage_class"),
    sse: str | None = default("sse"),
    sse_kms_key_id: str | None = default("sse_kms_key_id"),
    acl: str | None = default("acl"),
    requester_pays: bool = default("requester_pays"),
    keep_source_layout: bool = default("keep_source_layout"),
    part_copies: str = default("part_copies"),
    checksum_algorithm: str | None = default("checksum_algorithm"),
    report: str | None = default("report"),
    report_retention: str | None = default("report_retention"),
    report_credentials: str | None = default("report_credentials"),
    notification_block: str | None = default("notification_block"),
    shard_files: int = default("shard_files"),
    shard_deployment: str = default("shard_deployment"),
    max_resumes: int = default("max_resumes"),
):
    values = dict(locals())  # the parameters, before any other name is bound
    started = time.time()
    if (gave_up := _resumed_too_often(max_resumes)) is not None:
        return gave_up
    engine_values = options.engine_values(values)
    transfer, head_start = _opened.pop(opened_key(manifest, header, values), (None, None))
    if transfer is None:
        transfer = open_transfer(manifest, values, header=header)
    base = artifact_base(manifest, transfer_name)
    if shard_files > 0 and delete:
        get_run_logger().warning("a sync with delete runs in one run, not in shards (flows/shard.py)")
    if shard_files > 0 and not dry_run and not delete:
        from s3flow.flows.shard import shards_of, transfer_in_shards

        cut = shards_of(transfer, shard_files)
        first, second = next(cut, None), next(cut, None)
        if second is not None:  # more than one shard's worth: spread it over the pool
            return transfer_in_shards(
                itertools.chain([first, second], cut),
                manifest,
                base,
                engine_values,
                shard_deployment,
                started,
                notification_block,
            )
    return run_transfer(
        transfer,
        base,
        started,
        concurrency_limit=concurrency_limit,
        prices=prices,
        notification_block=notification_block,
        head_start=head_start,
    )


def _resumed_too_often(max_resumes: int) -> Failed | None:
    """A run that crashed is scheduled again by `s3flow setup`'s automation, up to
    max_resumes times; after that it ends Failed, so a transfer that keeps killing its
    machine (out of memory...) does not loop for ever."""
    runs = flow_run.run_count or 1
    if runs - 1 <= max_resumes:
        if runs > 1:
            get_run_logger().warning("resuming after a crash (resume %d of at most %d)", runs - 1, max_resumes)
        return None
    return Failed(
        message=f"crashed {runs - 1} times and resumed {max_resumes} times: not resumed again; "
        "look at the earlier attempts' logs (out of memory? the machine lost?), then run it again"
    )


def run_transfer(
    transfer: Transfer,
    base: str,
    started: float,
    *,
    concurrency_limit: str,
    prices: dict[str, float] | None,
    notification_block: str | None,
    trigger: str = "",
    counts_key: str | None = None,
    head_start: HeadStart | None = None,
):
    """An opened transfer, run in this flow run: plan, copy, record, finish. A shard
    passes its transfer's trigger, and `counts_key` for the summary its parent reads;
    the CLI a head start, the transfer's copies already running, which this run adopts."""
    logger = get_run_logger()
    dry_run = transfer.config.dry_run
    price_table = estimate.prices_from(prices) if dry_run else None
    limit = ensure_concurrency_limit(concurrency_limit)
    if limit < 1:
        raise InputError(
            f"the global concurrency limit {concurrency_limit!r} has no slots: raise it "
            f"with `prefect global-concurrency-limit update {concurrency_limit} --limit N`"
        )
    slots = min(transfer.config.max_concurrency, limit)
    logger.info(
        "transfer %s: %d manifest rows, holding %d slots of %r", base, len(transfer.rows), slots, concurrency_limit
    )
    # Never more requests in flight than slots held: a limit smaller than
    # max_concurrency shrinks this transfer's pool to fit.
    transfer = transfer.with_config(replace(transfer.config, max_concurrency=slots))
    plan = None
    if price_table is not None:  # a dry run: its estimate is built as results come
        plan = estimate.Estimate(
            transfer.config, price_table, frozenset(r.line for r in transfer.rows if not r.is_prefix)
        )
    plan_lock = threading.Lock()
    # What started the run and this process's labels are looked up while copies start:
    # each is an API call the first copy need not wait for.
    found_trigger = _in_background(run_trigger, transfer.manifest) if not trigger else trigger
    _in_background(claim, flow_run.id)
    if not dry_run:  # earlier runs of this transfer that died: mark them, abort their open uploads
        settle_earlier_runs(base, flow_run.id, transfer.destination, logger)
    transfer_id = str(uuid.uuid4())
    if head_start is not None:
        runner = head_start.runner
    else:
        runner = Runner(
            transfer,
            stop_signals=(TerminationSignal, KeyboardInterrupt),
            execute=lambda batch: _submit(transfer_id, batch),
        )
    recorder = Recorder(
        History(str(flow_run.id or "")),
        found_trigger,
        lambda: _progress(runner),
        f"{base}-progress",
        uploads_key=uploads_key(base),
    )
    report = transfer.report(base, str(flow_run.id or f"local-{transfer_id}"))
    if report is not None:
        report.trigger = lambda: recorder.trigger
        report.start()

    def on_result(result) -> None:
        recorder.add(result)
        if report is not None:
            report.add(result)
        if plan is not None:
            with plan_lock:
                plan.add([result])

    _running[transfer_id] = _Run(runner)
    watch = _CancelWatch(runner)
    try:
        with concurrency(concurrency_limit, occupy=slots), runner:
            if head_start is None:
                runner.copier.on_upload = recorder.add_upload
                runner.on_result = on_result
                outcome = runner.run()
            else:
                flow_context = contextvars.copy_context()  # task runs are submitted in this run's context
                head_start.adopt(
                    on_result,
                    recorder.add_upload,
                    lambda batch: flow_context.copy().run(_submit, transfer_id, batch),
                    slots,
                )
                outcome = _finish_head_start(head_start)
    finally:
        watch.stop()
        _running.pop(transfer_id, None)
        recorder.close()
    if outcome.slowdowns:
        logger.warning(
            "S3 asked this transfer to slow down %d times: it went down to %d requests in "
            "flight (of %d) and back up as requests succeeded",
            outcome.slowdowns,
            outcome.lowest_concurrency,
            slots,
        )
    if outcome.excluded:
        logger.info("filters left out %d source objects", outcome.excluded)
    summary = outcome.summary
    summary.seconds = time.time() - started
    if plan is not None and not outcome.cancelled:
        return _finish_plan(plan, recorder, transfer.manifest, base, (outcome.listed_pages, outcome.excluded))
    final = _finish(
        summary,
        recorder,
        transfer.manifest,
        base,
        logger,
        cancelled=outcome.cancelled,
        notification_block=notification_block,
        counts_key=counts_key,
        report=report,
    )
    if isinstance(outcome.stopped_by, TerminationSignal):
        raise outcome.stopped_by  # the engine and the worker take the run to Cancelled
    return final


def _finish_head_start(head_start: HeadStart):
    """Wait for an adopted head start's runner; a signal (Ctrl-C, the worker's SIGTERM)
    cancels it as it would the run's own runner, and is re-raised by the caller."""
    stopped = None
    while True:
        try:
            outcome = head_start.wait(0.5)
        except (TerminationSignal, KeyboardInterrupt) as signal:
            stopped = stopped or signal
            head_start.runner.cancel()
            continue
        if outcome is not None:
            if stopped is not None:
                outcome.stopped_by = stopped
            return outcome


def _in_background(function, *args) -> Future:
    """Call function(*args) on a thread of its own, in this run's context (its API)."""
    done: Future = Future()
    context = contextvars.copy_context()

    def call() -> None:
        try:
            done.set_result(context.run(function, *args))
        except BaseException as exc:  # handed to whoever waits for it
            done.set_exception(exc)

    threading.Thread(target=call, name=f"s3flow-{function.__name__}", daemon=True).start()
    return done


def _submit(transfer_id: str, batch: Batch) -> _TaskRunning:
    running = _running[transfer_id]
    running.batches[batch.number] = batch
    future = copy_batch.submit(batch.number, transfer_id)
    return _TaskRunning(future, lambda: running.batches.pop(batch.number, None))


def _progress(runner: Runner) -> tuple[float, str]:
    """The progress artifact: files and bytes, "listing" only while the plan is made."""
    summary = runner.summary
    done, planned = summary.files, max(runner.planned, summary.files)
    files = done / planned if planned else 0.0
    written = runner.bytes_written
    data = min(1.0, written / runner.planned_bytes) if runner.planned_bytes else files
    percent = 100.0 if planned and done >= planned and not runner.listing else 100.0 * min(files, data)
    state = " (still listing: more files may come)" if runner.listing else ""
    text = (
        f"{done:,} of {planned:,} files done{state}: {summary.copied:,} copied, {summary.skipped:,} "
        f"skipped, {summary.failed:,} failed; {human_bytes(written)} of "
        f"{human_bytes(runner.planned_bytes)} written"
    )
    return percent, text


def _finish_plan(
    plan: estimate.Estimate, recorder: Recorder, manifest: str, base: str, listing: tuple[int, int]
) -> dict:
    """listing: (ListObjectsV2 pages, source objects filters excluded)."""
    plan.finish(*listing)
    result = plan.to_json()
    create_markdown_artifact(
        key=f"{base}-plan",
        description=f"Dry run of {manifest}",
        markdown=estimate.markdown(result, f"Plan: {manifest}"),
    )
    create_table_artifact(
        key=f"{base}-plan-files",
        table=recorder.table_rows(),
        description=f"What a transfer of {manifest} would do, file by file{_table_note(plan.copy.objects + plan.skip.objects + plan.delete.objects + plan.fail.objects)}",
    )
    return {**result, "flow_run_id": str(flow_run.id or "")}


class _CancelWatch:
    """Cancels the transfer when the run is set Cancelling (the UI, `prefect flow-run
    cancel`). A worker's run also gets SIGTERM; a run of `s3flow transfer` gets only this.
    It warns when it has not reached the API for a while: a cancel would not be seen."""

    def __init__(self, runner: Runner, every: float = 2.0) -> None:
        self._stop = threading.Event()
        self._runner = runner
        self._every = every
        self._run_id = flow_run.id
        if self._run_id:  # the thread runs in this context: the same Prefect settings and API
            context = contextvars.copy_context()
            threading.Thread(target=context.run, args=(self._poll,), name="s3flow-cancel-watch", daemon=True).start()

    def _poll(self) -> None:
        reached, warned = time.monotonic(), 0.0
        with get_client(sync_client=True) as client:
            while not self._stop.wait(self._every):
                try:
                    state = client.read_flow_run(self._run_id).state
                except Exception as exc:  # the API away: look again, and say so
                    away = time.monotonic() - reached
                    if away >= CANCEL_WATCH_WARN and time.monotonic() - warned >= CANCEL_WATCH_WARN:
                        warned = time.monotonic()
                        _warn(
                            f"the Prefect API has not answered for {away:.0f} s: a cancel from the UI "
                            f"would not be seen until it does ({exc})"
                        )
                    continue
                reached = time.monotonic()
                if state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED):
                    _warn("the run was cancelled: stopping the transfer")
                    self._runner.cancel()
                    return

    def stop(self) -> None:
        self._stop.set()


def _warn(message: str) -> None:
    try:
        get_run_logger().warning(message)
    except Exception:  # outside a run context
        logging.getLogger(__name__).warning(message)


def _failure_body(summary: Summary, manifest: str, base: str, codes: str) -> str:
    """The failures grouped by cause, and the counts: never thousands of lines."""
    lines = [
        summary.headline(),
        "",
        f"Manifest: {manifest}",
        f"Errors: {codes}",
        "",
        f"Failed files: {summary.failed}, by cause:",
        *(f"  - {line}" for line in summary.cause_lines(NOTIFY_FAILURES)),
        "",
        f"Flow run: {flow_run.id}",
        f"Link: {run_link()}",
        f"Artifacts: {base}-files (per file), {base}-summary; every file: s3flow status {flow_run.id}",
    ]
    return "\n".join(lines)


def _table_note(files: int) -> str:
    from s3flow.flows.live import KEEP_ROWS

    if files <= KEEP_ROWS:
        return ""
    return (
        f" (the first {KEEP_ROWS:,} of {files:,} files, failures first: every file is in this run's "
        f"file-result pages, `s3flow status {flow_run.id} --all`)"
    )


def _finish(
    summary: Summary,
    recorder: Recorder,
    manifest: str,
    base: str,
    logger,
    cancelled: bool = False,
    notification_block: str | None = None,
    counts_key: str | None = None,
    report: audit.Report | None = None,
):
    state = "cancelled" if cancelled else "failed" if summary.failed else "completed"
    report_error = _close_report(report, state, logger)
    if counts_key:  # a shard: its counts, as one row its transfer's run reads back
        counts = summary.to_json()
        create_table_artifact(
            key=counts_key,
            description="This shard's counts, for its transfer",
            table=[
                {
                    **{k: v for k, v in counts.items() if k not in ("failures", "error_codes", "causes")},
                    "error_codes": json.dumps(counts["error_codes"]),
                    "causes": json.dumps(counts["causes"]),
                    "failures": json.dumps(counts["failures"][:TOP_FAILURES]),
                }
            ],
        )
    files_id = create_table_artifact(
        key=f"{base}-files",
        table=recorder.table_rows(),
        description=f"Files of {manifest}: {summary.headline()}{_table_note(summary.files)}",
    )
    create_markdown_artifact(
        key=f"{base}-summary",
        description=f"Summary of {manifest}",
        markdown=summary.markdown(
            f"Transfer {manifest}" + (" (cancelled)" if cancelled else ""),
            {
                "Per-file table": f"[{base}-files]({artifact_path(files_id)})" if files_id else f"`{base}-files`",
                "Every file, from the shell": f"`s3flow status {flow_run.id} --all`",
                "Flow run": f"[{flow_run.id}]({run_path()})",
                **(
                    {"Completion report": f"NOT WRITTEN: {report_error}" if report_error else f"`{report.uri}`"}
                    if report is not None
                    else {}
                ),
            },
        ),
    )
    logger.info(summary.headline())
    for line in summary.cause_lines(TOP_FAILURES):
        logger.warning("FAILED %s", line)
    result = {**summary.to_json(), "flow_run_id": str(flow_run.id or "")}
    if report is not None:
        result["report"] = report.uri
    if cancelled:
        return Cancelled(message=f"cancelled: {summary.headline()}", data=result)
    if summary.failed:
        codes = ", ".join(f"{code} x{n}" for code, n in summary.error_codes.most_common(5))
        unsent = notify_failure(
            notification_block,
            f"{flow_run.flow_name or 'transfer-manifest'}: {summary.failed} of {summary.files} files failed",
            _failure_body(summary, manifest, base, codes),
        )
        return Failed(
            message=f"{summary.failed} of {summary.files} files failed ({codes}): "
            f"{summary.headline()}" + (f"; {unsent}" if unsent else ""),
            data=result,
        )
    if report_error and report is not None:  # the files are fine; their audit record is not there
        return Failed(
            message=f"the completion report could not be written to {report.uri}: {report_error}", data=result
        )
    return result


def _close_report(report: audit.Report | None, state: str, logger) -> str:
    """Write the final report; "" when written, else why not."""
    if report is None:
        return ""
    try:
        written = report.close(state)
    except S3Error as exc:
        logger.error("the completion report could not be written to %s: %s", report.uri, exc.describe())
        return f"{exc.code}: {exc.message or exc.describe()}"
    logger.info(
        "completion report: %s (%d files, csv sha256 %s)", report.uri, written["files"], written["csv"]["sha256"]
    )
    return ""
