"""The transfer-manifest flow: copy what a manifest lists, batch by batch.

The flow plans (streaming listings), hands batches of files to the copy-batch
task (one task run per batch, never per object: a task run costs ~10 ms of
Prefect bookkeeping), and keeps every file's result in artifacts.
"""
from __future__ import annotations

import contextvars
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact, create_progress_artifact, create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, TerminationSignal
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from blocks.credentials import endpoint_from_block
from flows.history import History, run_trigger, stamped
from flows.notify import artifact_link, notify_failure, run_link
from flows.status import BATCH_MARK
from s3flow import estimate
from s3flow import filters as filter_rules
from s3flow import manifest as manifests
from s3flow.config import MiB, TransferConfig
from s3flow.copy import Copier
from s3flow.errors import InputError, S3Error
from s3flow.manifest import ManifestRow
from s3flow.plan import Batcher, Planner, cancelled_rows, check_buckets
from s3flow.record import CANCELLED, FAILED, FileResult
from s3flow.report import TOP_FAILURES, Summary
from s3flow.retry import Retrier
from s3flow.storage import Storage

SHARD_DEPLOYMENT = "transfer-shard/shards"  # prefect.yaml's deployment of flows/shard.py
CONCURRENCY_LIMIT = "s3flow-requests"  # global limit: S3 requests in flight, all runs
CONCURRENCY_LIMIT_SLOTS = 256  # its size when we create it
BATCHES_IN_FLIGHT = 8  # batch task runs at once; the Copier's slots bound the requests
PROGRESS_EVERY = 1.0  # seconds between progress artifact updates
NOTIFY_FAILURES = 10  # failed files listed in a notification
FILES_TABLE_ROWS = 10_000  # rows of the -files table; every file is in the batch tables
CANCEL_GRACE = 20.0  # seconds a cancelled transfer waits for requests in flight (a worker allows 30)

_transfers: dict[str, tuple[Copier, str, History]] = {}  # running transfers of this process


@dataclass(frozen=True)
class Prepared:
    config: TransferConfig
    rows: list[ManifestRow]
    source: Storage
    destination: Storage
    missing_buckets: dict[str, tuple[str, str]]


def prepare(manifest: str, *, header: bool | None = None, delete: bool = False, dry_run: bool = False,
            filters: list[str] | None = None, storage_class: str | None = None,
            sse: str | None = None, sse_kms_key_id: str | None = None, acl: str | None = None,
            requester_pays: bool = False, keep_source_layout: bool = True, part_copies: str = "auto",
            checksum_algorithm: str | None = "CRC32C", multipart_threshold_mib: int = 256, part_size_mib: int = 64,
            max_concurrency: int = 64, part_concurrency: int = 8, max_attempts: int = 5,
            batch_files: int = 2000, source_credentials: str | None = None,
            destination_credentials: str | None = None,
            rows: list[ManifestRow] | None = None) -> Prepared:
    """Everything a transfer needs, checked before anything is copied; InputError if not.
    `rows`: a shard's rows, already read from its transfer's manifest."""
    config = TransferConfig(
        multipart_threshold=multipart_threshold_mib * MiB, part_size=part_size_mib * MiB,
        max_concurrency=max_concurrency, part_concurrency=part_concurrency,
        max_attempts=max_attempts, delete=delete, dry_run=dry_run, batch_files=batch_files,
        filters=filter_rules.parse(filters), storage_class=storage_class, sse=sse,
        sse_kms_key_id=sse_kms_key_id, acl=acl, requester_pays=requester_pays,
        keep_source_layout=keep_source_layout, part_copies=part_copies,
        checksum_algorithm=_checksum(checksum_algorithm),
        source=endpoint_from_block(source_credentials),
        destination=endpoint_from_block(destination_credentials),
    )
    source = Storage(config.source, config.max_concurrency, config.requester_pays)
    destination = source if config.destination == config.source else Storage(
        config.destination, config.max_concurrency, config.requester_pays)
    source.check_credentials("source")
    destination.check_credentials("destination")
    if rows is None:
        text = manifests.read_text(manifest, lambda ref: _fetch_manifest(source, ref))
        rows = manifests.parse(text, header=header, name=manifest)
    if delete and (problems := manifests.check_delete(rows)):
        raise InputError(problems, manifest)
    missing = check_buckets(rows, source, destination, Retrier(config))
    return Prepared(config, rows, source, destination, missing)


def _checksum(name: str | None) -> str | None:
    return None if not name or name.lower() == "none" else name.upper()


def _fetch_manifest(storage: Storage, ref) -> bytes:
    try:
        return storage.get_bytes(ref)
    except S3Error as exc:
        raise InputError(f"cannot read the manifest {ref}: {exc.code}: {exc.message}") from None


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


@task(name="copy-batch", task_run_name="copy-batch-{number}", cache_policy=NO_CACHE,
      retries=2, retry_delay_seconds=5)
def copy_batch(number: int, items: list, transfer_id: str) -> list[FileResult]:
    """Copy one batch of files with the transfer's Copier; one result per file.

    S3 errors never raise here (each file's retries and failure are in its result);
    the task's own retries are for the unexpected, and re-copying is idempotent.
    The batch's files are recorded at once, so `s3flow status` sees them mid-transfer."""
    copier, trigger, history = _transfers[transfer_id]
    results = stamped(copier.run(items), trigger)
    _record(results, f"batch {number}", history)
    return results


def _record(results: list[FileResult], what: str, history: History) -> None:
    """A batch's files as a table artifact (for `status`) and as events (for `history`)."""
    if results:
        rows = [result.row() for result in results]
        create_table_artifact(table=rows, description=f"{BATCH_MARK}: {what}")
        _keep_history(history.add, rows)


def _keep_history(send, *args) -> None:
    try:
        send(*args)
    except Exception as exc:  # the copies are done: never redo them for a lost index entry
        get_run_logger().warning("history events not recorded: %s", exc)


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


@dataclass
class _Progress:
    """Collects results as batches finish and keeps the progress artifact moving."""

    base: str
    summary: Summary = field(default_factory=Summary)
    results: list[FileResult] = field(default_factory=list)
    planned: int = 0
    planning: bool = True
    artifact_id: uuid.UUID | None = None
    last_update: float = 0.0
    stopped_by: BaseException | None = None  # the signal that cancelled the run, if one did
    trigger: str = ""  # what started the run, stamped on every file
    plan: estimate.Estimate | None = None  # a dry run's estimate, built as results come

    def add(self, results: list[FileResult]) -> list[FileResult]:
        """Count a batch's results; keep the first FILES_TABLE_ROWS for the -files table
        (memory stays flat on a million files: each batch's table has its own)."""
        results = [r if r.trigger or not self.trigger else replace(r, trigger=self.trigger) for r in results]
        self.results.extend(results[:max(0, FILES_TABLE_ROWS - len(self.results))])
        self.summary.add(results)
        if self.plan is not None:
            self.plan.add(results)
        if time.monotonic() - self.last_update >= PROGRESS_EVERY:
            self.show()
        return results

    def show(self) -> None:
        total = max(self.planned, 1)
        done = self.summary.files
        note = " (still listing)" if self.planning else ""
        text = f"{done:,} of {self.planned:,} files done{note}: {self.summary.failed:,} failed"
        percent = min(100.0, 100.0 * done / total) if self.planned else 0.0
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, key=f"{self.base}-progress", description=text)
        else:
            update_progress_artifact(self.artifact_id, percent, description=text)
        self.last_update = time.monotonic()


@flow(name="transfer-manifest", task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_IN_FLIGHT))
def transfer_manifest(
    manifest: str,
    delete: bool = False,
    header: bool | None = None,
    multipart_threshold_mib: int = 256,
    part_size_mib: int = 64,
    max_concurrency: int = 64,
    part_concurrency: int = 8,
    max_attempts: int = 5,
    batch_files: int = 2000,
    source_credentials: str | None = None,
    destination_credentials: str | None = None,
    transfer_name: str | None = None,
    concurrency_limit: str = CONCURRENCY_LIMIT,
    dry_run: bool = False,
    prices: dict[str, float] | None = None,
    filters: list[str] | None = None,
    storage_class: str | None = None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
    acl: str | None = None,
    requester_pays: bool = False,
    keep_source_layout: bool = True,
    part_copies: str = "auto",
    checksum_algorithm: str | None = "CRC32C",
    notification_block: str | None = None,
    shard_files: int = 0,
    shard_deployment: str = SHARD_DEPLOYMENT,
):
    """Copy every object a manifest lists (a local path or an s3:// URI).

    Object rows copy one object; prefix rows sync a prefix (with `delete`, also
    removing destination objects the source no longer has). Ends Completed when
    every file was copied or skipped, Failed (with the summary) when any failed.

    Args:
        manifest: Local path (on the worker) or s3://bucket/key of a CSV of source,destination rows.
        delete: Prefix rows: delete destination objects the source no longer has.
        header: Whether the first row is a header; empty to detect it.
        multipart_threshold_mib: Objects larger than this are copied in parts.
        part_size_mib: Part size of multipart copies (grown to fit S3's 10,000 parts).
        max_concurrency: S3 requests in flight for this transfer, files and parts together.
        part_concurrency: Parts of one object copied at once.
        max_attempts: Tries per S3 request on transient errors (SlowDown, 500, resets...).
        batch_files: Files per copy-batch task run.
        source_credentials: AwsCredentials block for the source side; empty for the environment's.
        destination_credentials: AwsCredentials block for the destination side.
        transfer_name: Names the artifact keys; default: derived from the manifest location.
        concurrency_limit: Global concurrency limit all transfers share (created if missing).
        dry_run: Only plan: list and HEAD, copy and delete nothing, record the plan and its cost.
        prices: Request prices for the plan's cost (keys of s3flow.estimate.DEFAULT_PRICES).
        filters: Prefix rows, in order: "include:GLOB" / "exclude:GLOB" on the key below the
            prefix; the last match wins (see s3flow/filters.py).
        storage_class: Destination storage class; empty keeps the source's (archive -> STANDARD).
        sse: Destination encryption, AES256 or aws:kms; empty: the destination bucket's default.
        sse_kms_key_id: KMS key for sse=aws:kms.
        acl: Canned ACL for the destination, e.g. bucket-owner-full-control (cross-account).
        requester_pays: The source bucket is requester-pays; this transfer pays for its reads.
        keep_source_layout: Copy in the source's own parts so ETags match (s3flow/layout.py).
        part_copies: Multipart sources up to 5 GiB: "auto" copies them in parts on AWS and
            with one CopyObject on stores where that keeps the ETag; "always" in parts.
        checksum_algorithm: Checksum S3 computes on each copy, recorded per file (CRC32C, CRC32,
            CRC64NVME, SHA1, SHA256; "none" for stores that reject it).
        notification_block: SnsNotification block told when files failed; empty: none.
        shard_files: Split a transfer of more files than this into shards of about this
            many, each its own run of `shard_deployment` on the work pool (0: never split).
        shard_deployment: The transfer-shard deployment that runs the shards.
    """
    started = time.time()
    options = dict(
        delete=delete, dry_run=dry_run, filters=filters,
        storage_class=storage_class, sse=sse, sse_kms_key_id=sse_kms_key_id, acl=acl,
        requester_pays=requester_pays, keep_source_layout=keep_source_layout, part_copies=part_copies,
        checksum_algorithm=checksum_algorithm, multipart_threshold_mib=multipart_threshold_mib,
        part_size_mib=part_size_mib, max_concurrency=max_concurrency,
        part_concurrency=part_concurrency, max_attempts=max_attempts, batch_files=batch_files,
        source_credentials=source_credentials, destination_credentials=destination_credentials)
    job = prepare(manifest, header=header, **options)
    base = artifact_base(manifest, transfer_name)
    if shard_files > 0 and delete:
        get_run_logger().warning("a sync with delete runs in one run, not in shards (flows/shard.py)")
    if shard_files > 0 and not dry_run and not delete:
        from flows.shard import shards_of, transfer_in_shards

        cut = shards_of(job, shard_files)
        first, second = next(cut, None), next(cut, None)
        if second is not None:  # more than one shard's worth: spread it over the pool
            return transfer_in_shards(itertools.chain([first, second], cut), manifest, base, options,
                                      shard_deployment, started, notification_block)
    return _transfer(job, manifest, base, started, concurrency_limit=concurrency_limit, prices=prices,
                     notification_block=notification_block)


def _transfer(job: Prepared, manifest: str, base: str, started: float, *, concurrency_limit: str,
              prices: dict[str, float] | None, notification_block: str | None, trigger: str = "",
              counts_key: str | None = None):
    """The transfer of a prepared job in this run: plan, copy, record, finish. A shard
    passes its transfer's trigger, and `counts_key` for the summary its parent reads."""
    logger = get_run_logger()
    dry_run = job.config.dry_run
    price_table = estimate.prices_from(prices) if dry_run else None
    progress = _Progress(base, trigger=trigger or run_trigger(manifest), plan=estimate.Estimate(
        job.config, price_table, frozenset(r.line for r in job.rows if not r.is_prefix)) if dry_run else None)
    progress.show()
    limit = ensure_concurrency_limit(concurrency_limit)
    if limit < 1:
        raise InputError(f"the global concurrency limit {concurrency_limit!r} has no slots: raise it "
                         f"with `prefect global-concurrency-limit update {concurrency_limit} --limit N`")
    slots = min(job.config.max_concurrency, limit)
    logger.info("transfer %s: %d manifest rows, holding %d slots of %r", base, len(job.rows),
                slots, concurrency_limit)
    # Never more requests in flight than slots held: a limit smaller than
    # max_concurrency shrinks this transfer's pool to fit.
    config = replace(job.config, max_concurrency=slots)
    with concurrency(concurrency_limit, occupy=slots), \
            Copier(config, job.source, job.destination) as copier:
        listed_pages, excluded = _run(job, copier, progress)
    if copier.slots.slowdowns:
        logger.warning("S3 asked this transfer to slow down %d times: it went down to %d requests in "
                       "flight (of %d) and back up as requests succeeded", copier.slots.slowdowns,
                       copier.slots.lowest, copier.slots.maximum)
    progress.planning = False
    progress.summary.seconds = time.time() - started
    progress.show()
    if dry_run and not copier.cancelled:
        return _finish_plan(progress, manifest, (listed_pages, excluded))
    final = _finish(progress, manifest, logger, cancelled=copier.cancelled,
                    notification_block=notification_block, counts_key=counts_key)
    if isinstance(progress.stopped_by, TerminationSignal):
        raise progress.stopped_by  # the engine and the worker take the run to Cancelled
    return final


def _finish_plan(progress: _Progress, manifest: str, listing: tuple[int, int]) -> dict:
    """listing: (ListObjectsV2 pages, source objects filters excluded)."""
    plan = progress.plan
    plan.finish(*listing)
    result = plan.to_json()
    create_markdown_artifact(key=f"{progress.base}-plan", description=f"Dry run of {manifest}",
                             markdown=estimate.markdown(result, f"Plan: {manifest}"))
    create_table_artifact(key=f"{progress.base}-plan-files", table=[r.row() for r in progress.results],
                          description=f"What a transfer of {manifest} would do, file by file"
                                      f"{_table_note(progress)}")
    return result


def _run(job: Prepared, copier: Copier, progress: _Progress) -> tuple[int, int]:
    """Plan and copy at once: batches are handed out while listings still stream,
    with at most 2 x BATCHES_IN_FLIGHT batches waiting, so memory stays bounded.

    A cancel (the run set Cancelling, the worker's SIGTERM, Ctrl-C) stops it as
    the table in s3flow/copy.py says; every file planned so far gets its result,
    and every manifest row not fully planned one row-level `cancelled` result."""
    transfer_id = str(uuid.uuid4())
    history = History(str(flow_run.id or ""))
    _transfers[transfer_id] = (copier, progress.trigger, history)
    pending: list = []
    numbers = itertools.count(1)

    def harvest(keep: int, deadline: float | None = None) -> None:
        """Collect finished batches, oldest first; wait while more than `keep` are pending."""
        while pending and (len(pending) > keep or pending[0][0].wrapped_future.done()):
            future, batch = pending[0]
            if deadline is not None:
                future.wait(max(0.0, deadline - time.monotonic()))
                if not future.wrapped_future.done():
                    progress.add([_in_flight(item) for item in batch])
                    pending.pop(0)
                    continue
            try:
                results = future.result()
            except Exception as exc:  # a bug in a batch: its files are failed, never lost
                results = [_unexpected(item, exc) for item in batch]
            pending.pop(0)  # only now: a signal while waiting loses nothing
            progress.add(results)

    def submit(batch: list) -> None:
        pending.append((copy_batch.submit(next(numbers), quote(batch), transfer_id), batch))

    planner = Planner(job.config, job.source, job.destination)
    batcher = Batcher(job.config)
    settled: list[FileResult] = []  # files the planning decided (skips, missing buckets)
    watch = _CancelWatch(copier)
    stopped: BaseException | None = None
    try:
        try:
            for planned in planner.plan(job.rows, job.missing_buckets):
                progress.planned += 1
                if isinstance(planned, FileResult):
                    settled.extend(progress.add([planned]))
                    if len(settled) >= job.config.batch_files:
                        _record(settled, "planning", history)
                        settled.clear()
                    continue
                for batch in batcher.add(planned):
                    submit(batch)
                    harvest(keep=2 * BATCHES_IN_FLIGHT)
                if copier.cancelled:
                    break
        except (TerminationSignal, KeyboardInterrupt) as signal:
            stopped = signal
            copier.cancel()
        deadline = time.monotonic() + CANCEL_GRACE if copier.cancelled else None
        while True:  # a second signal while winding down must not lose the results
            try:
                for batch in batcher.flush():
                    submit(batch)
                harvest(keep=0, deadline=deadline)
                break
            except (TerminationSignal, KeyboardInterrupt) as signal:
                stopped = stopped or signal
                copier.cancel()
                deadline = deadline or time.monotonic() + CANCEL_GRACE
        progress.planning = False
        if copier.cancelled:
            unplanned = cancelled_rows(job.rows, planner.rows_done)
            settled.extend(progress.add(unplanned))
        _record(settled, "planning", history)
    finally:
        watch.stop()
        _transfers.pop(transfer_id, None)
        _keep_history(history.close)
    if planner.excluded:
        get_run_logger().info("filters left out %d source objects", planner.excluded)
    if stopped is not None:
        progress.stopped_by = stopped
    return planner.listed_pages, planner.excluded


class _CancelWatch:
    """Cancels the copier when the run is set Cancelling (the UI, `prefect flow-run
    cancel`). A worker's run also gets SIGTERM; a run of `s3flow transfer` gets only this."""

    def __init__(self, copier: Copier, every: float = 2.0) -> None:
        self._stop = threading.Event()
        self._copier = copier
        self._every = every
        self._run_id = flow_run.id
        if self._run_id:  # the thread runs in this context: the same Prefect settings and API
            context = contextvars.copy_context()
            threading.Thread(target=context.run, args=(self._poll,), name="s3flow-cancel-watch",
                             daemon=True).start()

    def _poll(self) -> None:
        with get_client(sync_client=True) as client:
            while not self._stop.wait(self._every):
                try:
                    state = client.read_flow_run(self._run_id).state
                except Exception:  # the API away for a moment: look again next time
                    continue
                if state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED):
                    get_run_logger().warning("the run was cancelled: stopping the transfer")
                    self._copier.cancel()
                    return

    def stop(self) -> None:
        self._stop.set()


def _in_flight(item) -> FileResult:
    source = getattr(item, "source_ref", None)
    now = time.time()
    return FileResult(source.uri if source else "", item.destination.uri, CANCELLED, started=now,
                      ended=now, line=item.line,
                      error=f"Cancelled: still in flight {CANCEL_GRACE:.0f} s after the cancel; it may "
                            "or may not have been copied: the next run of this transfer checks it")


def _unexpected(item, exc: Exception) -> FileResult:
    source = getattr(item, "source_ref", None)
    now = time.time()
    return FileResult(source.uri if source else "", item.destination.uri, FAILED,
                      started=now, ended=now, error=f"InternalError: {exc!r}", line=item.line)


def _failure_body(summary: Summary, manifest: str, base: str, codes: str) -> str:
    """The top failures and the counts, never thousands of lines."""
    top = NOTIFY_FAILURES
    lines = [summary.headline(), "", f"Manifest: {manifest}", f"Errors: {codes}", "",
             f"Failed files ({min(top, summary.failed)} of {summary.failed}):",
             *(f"  - {f.source} -> {f.destination}: {f.error}" for f in summary.failures[:top])]
    if summary.failed > top:
        lines.append(f"  ... and {summary.failed - top} more: see the per-file table")
    lines += ["", f"Flow run: {flow_run.id}", f"Link: {run_link()}",
              f"Artifacts: {base}-files (per file), {base}-summary"]
    return "\n".join(lines)


def _table_note(progress: _Progress) -> str:
    if progress.summary.files <= len(progress.results):
        return ""
    return (f" (the first {len(progress.results):,} of {progress.summary.files:,} files: every file "
            "is in this run's copy-batch tables, `s3flow status RUN`)")


def _md_link(text, url: str) -> str:
    return f"[{text}]({url})" if url.startswith("http") else str(text)


def _finish(progress: _Progress, manifest: str, logger, cancelled: bool = False,
            notification_block: str | None = None, counts_key: str | None = None):
    summary, base = progress.summary, progress.base
    if counts_key:  # a shard: its counts, as one row its transfer's run reads back
        counts = summary.to_json()
        create_table_artifact(key=counts_key, description="This shard's counts, for its transfer", table=[{
            **{k: v for k, v in counts.items() if k not in ("failures", "error_codes")},
            "error_codes": json.dumps(counts["error_codes"]),
            "failures": json.dumps(counts["failures"][:TOP_FAILURES])}])
    files_id = create_table_artifact(
        key=f"{base}-files", table=[result.row() for result in progress.results],
        description=f"Every file of {manifest}: {summary.headline()}{_table_note(progress)}")
    files_url = artifact_link(files_id)
    create_markdown_artifact(
        key=f"{base}-summary", description=f"Summary of {manifest}",
        markdown=summary.markdown(f"Transfer {manifest}" + (" (cancelled)" if cancelled else ""), {
            "Per-file table": f"[{base}-files]({files_url})" if files_url else f"artifact `{base}-files`",
            "Flow run": _md_link(flow_run.id, run_link())}))
    logger.info(summary.headline())
    for failure in summary.failures[:TOP_FAILURES]:
        logger.warning("FAILED %s -> %s: %s", failure.source, failure.destination, failure.error)
    if summary.failed > TOP_FAILURES:
        logger.warning("... and %d more failed files: see artifact %s-files",
                       summary.failed - TOP_FAILURES, base)
    result = summary.to_json()
    if cancelled:
        return Cancelled(message=f"cancelled: {summary.headline()}",
                         data=result)
    if summary.failed:
        codes = ", ".join(f"{code} x{n}" for code, n in summary.error_codes.most_common(5))
        unsent = notify_failure(
            notification_block, f"transfer-manifest: {summary.failed} of {summary.files} files failed",
            _failure_body(summary, manifest, base, codes))
        return Failed(message=f"{summary.failed} of {summary.files} files failed ({codes}): "
                              f"{summary.headline()}" + (f"; {unsent}" if unsent else ""), data=result)
    return result
