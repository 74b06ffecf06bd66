"""A transfer, start to finish, with no Prefect in it: open, plan, run.

    transfer = Transfer.open(manifest, config)   # everything checked: InputError here, nothing copied
    transfer.plan()                               # the plan as data: CopyItem, DeleteItem, FileResult
    outcome = transfer.run(on_result)             # each file's FileResult the moment it is decided

Every way s3flow moves data runs this one loop: the transfer-manifest flow and its
shards (which hand batches to Prefect task runs through `execute`), replicate-object,
`plan`, `verify`, dry runs and both benchmarks.

| step  | who                  | what                                                         |
|-------|----------------------|--------------------------------------------------------------|
| open  | Transfer.open        | storages, credentials, the manifest read once and parsed, --delete's rules, buckets (HEAD) |
| plan  | plan.Planner         | prefix rows: listings joined into copy / skip / delete; object rows: a CopyItem to settle |
| batch | plan.Batcher         | at most batch_files files (the caller's unit of scheduling)   |
| run   | Runner.execute_batch | object rows settled by their HEADs (plan.settle), then copied (copy.Copier) or, in a dry run, described |
| wind down | Runner.run       | a cancel as copy.py's table says; rows never planned get one row-level `cancelled` |

Per-file isolation: a file's unexpected exception is that file's failure; a batch run
again (a retried task) only runs its files without a result; each file has exactly one
result, handed to `on_result` from whichever thread decided it (so `on_result` must be
thread-safe and quick).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

from . import audit
from . import manifest as manifests
from .config import TransferConfig
from .copy import UNEXPECTED_CODE, Copier
from .errors import InputError, S3Error
from .manifest import ManifestRow
from .plan import (
    Batcher,
    CopyItem,
    DeleteItem,
    Planned,
    Planner,
    cancelled_rows,
    check_buckets,
    needs_settling,
    settle,
    would_copy,
)
from .record import CANCELLED, FAILED, WOULD_DELETE, FileResult, ObjectRef
from .report import Summary
from .retry import Attempts, Retrier
from .storage import Storage

BATCHES_IN_FLIGHT = 8  # batches running at once; the Copier's slots bound the requests
CANCEL_GRACE = 20.0  # seconds a cancelled transfer waits for requests in flight (a worker allows 30)


@dataclass
class Batch:
    """A batch of work and the results of its files so far (by index in `items`)."""

    number: int
    items: list[CopyItem | DeleteItem]
    results: dict[int, FileResult] = field(default_factory=dict)
    error: BaseException | None = None  # what stopped the batch's runner, if anything did

    def open_items(self) -> list[tuple[int, CopyItem | DeleteItem]]:
        return [(index, item) for index, item in enumerate(self.items) if index not in self.results]


class Running(Protocol):
    """A batch handed to whoever runs it (a thread, a Prefect task run)."""

    def wait(self, timeout: float | None) -> bool:
        """Wait at most `timeout` seconds (None: until done); True once the batch is done."""
        ...


Execute = Callable[[Batch], Running]
OnResult = Callable[[FileResult], None]


@dataclass
class Outcome:
    summary: Summary
    listed_pages: int
    excluded: int
    cancelled: bool
    stopped_by: BaseException | None  # the signal that stopped the run, re-raised by the caller
    slowdowns: int
    lowest_concurrency: int


@dataclass(frozen=True)
class Transfer:
    manifest: str
    config: TransferConfig
    rows: list[ManifestRow]
    source: Storage
    destination: Storage
    missing_buckets: dict[str, tuple[str, str]]
    manifest_sha256: str = ""  # of the manifest's bytes, as read (the report records it)

    @classmethod
    def open(
        cls,
        manifest: str,
        config: TransferConfig,
        *,
        header: bool | None = None,
        rows: list[ManifestRow] | None = None,
        text: str | None = None,
    ) -> Transfer:
        """Everything a transfer needs, checked before anything is copied; InputError if
        not. `rows`: a shard's rows, or a replication's; `text`: the manifest's text."""
        source = Storage(config.source, config.max_concurrency, config.requester_pays)
        destination = (
            source
            if config.destination == config.source
            else Storage(config.destination, config.max_concurrency, config.requester_pays)
        )
        source.check_credentials("source")
        destination.check_credentials("destination")
        digest = ""
        if rows is None:
            if text is None:
                text = manifests.read_text(manifest, lambda ref: _fetch_manifest(source, ref))
            rows = manifests.parse(text, header=header, name=manifest)
            digest = hashlib.sha256(text.encode()).hexdigest()
        if config.delete and (problems := manifests.check_delete(rows)):
            raise InputError(problems, manifest)
        if config.report and not config.dry_run:
            audit.Retention.parse(config.report_retention)
            report_storage = destination if config.report_endpoint is None else Storage(config.report_endpoint)
            audit.check_location(report_storage, audit.report_prefix(config.report))
        missing = check_buckets(rows, source, destination, Retrier(config))
        return cls(manifest, config, rows, source, destination, missing, digest)

    def report(self, transfer: str, flow_run_id: str) -> audit.Report | None:
        """The completion report this run writes (None: not asked for, or a dry run)."""
        config = self.config
        if not config.report or config.dry_run:
            return None
        storage = self.destination if config.report_endpoint is None else Storage(config.report_endpoint)
        etag = ""
        if self.manifest.lower().startswith("s3://"):
            try:
                info = self.source.head(manifests.parse_uri(self.manifest))
                etag = info.etag if info else ""
            except (S3Error, ValueError):
                etag = ""
        return audit.Report(
            storage,
            audit.report_prefix(config.report),
            transfer,
            flow_run_id,
            self.manifest,
            etag,
            self.manifest_sha256,
            audit.Retention.parse(config.report_retention),
        )

    def with_config(self, config: TransferConfig) -> Transfer:
        """The same checked transfer with other settings (the slots a run was granted)."""
        return replace(self, config=config)

    def plan(self) -> Iterator[Planned]:
        return Planner(self.config, self.source, self.destination).plan(self.rows, self.missing_buckets)

    def runner(self, on_result: OnResult | None = None, **options) -> Runner:
        return Runner(self, on_result, **options)

    def run(self, on_result: OnResult | None = None, **options) -> Outcome:
        with self.runner(on_result, **options) as runner:
            return runner.run()


class Runner:
    """Runs a transfer's plan: see the module's table. One per run."""

    def __init__(
        self,
        transfer: Transfer,
        on_result: OnResult | None = None,
        *,
        on_upload: Callable[[ObjectRef, str, str], None] | None = None,
        execute: Execute | None = None,
        batches_in_flight: int = BATCHES_IN_FLIGHT,
        stop_signals: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
        cancel_grace: float = CANCEL_GRACE,
    ) -> None:
        self.transfer = transfer
        self.config = transfer.config
        self.on_result = on_result
        self.copier = Copier(self.config, transfer.source, transfer.destination)
        self.copier.on_bytes = self._wrote
        self.copier.on_upload = on_upload
        self.summary = Summary()
        self.planned = 0  # files planned so far
        self.planned_bytes = 0  # their bytes, where a listing told
        self.bytes_written = 0  # bytes written so far, parts of unfinished copies included
        self.listing = True  # the plan is still being made
        self._execute = execute
        self._threads: ThreadPoolExecutor | None = None
        self._in_flight = batches_in_flight
        self._stop_signals = stop_signals
        self._grace = cancel_grace
        self._lock = threading.Lock()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
        self.copier.close()

    def cancel(self) -> None:
        self.copier.cancel()

    @property
    def cancelled(self) -> bool:
        return self.copier.cancelled

    def _wrote(self, count: int) -> None:
        with self._lock:
            self.bytes_written += count

    def _emit(self, result: FileResult) -> None:
        with self._lock:
            self.summary.add_one(result)
        if self.on_result is not None:
            self.on_result(result)

    def _decided(self, batch: Batch, index: int, result: FileResult) -> None:
        """A file's one result: the first decided wins (a late answer after the cancel
        grace, or a retried batch, never makes a second)."""
        with self._lock:
            if index in batch.results:
                return
            batch.results[index] = result
        self._emit(result)

    def execute_batch(self, batch: Batch) -> dict:
        """Run the batch's files that have no result yet and wait for them; their counts.
        Whoever runs batches calls this (a thread, a Prefect task run, again on a retry)."""
        try:
            self._execute_batch(batch)
        except BaseException as exc:  # recorded for the files left without a result, then raised
            batch.error = exc
            raise
        statuses: dict[str, int] = {}
        for result in batch.results.values():
            statuses[result.status] = statuses.get(result.status, 0) + 1
        return statuses

    def _execute_batch(self, batch: Batch) -> None:
        waiting: list[Future] = []
        deletes: list[tuple[int, DeleteItem]] = []
        for index, item in batch.open_items():
            if isinstance(item, DeleteItem):
                deletes.append((index, item))
                continue
            prepare = self._prepare(item)
            future = self.copier.submit(item, prepare)
            future.add_done_callback(partial(self._landed, batch, index))
            waiting.append(future)
        if deletes:
            self._delete(batch, deletes)
        wait(waiting)

    def _prepare(self, item: CopyItem) -> Callable[[Attempts], CopyItem | FileResult] | None:
        """What runs before the copy on the file's thread: an object row's settling (its
        HEADs), and in a dry run the description of the copy instead of the copy."""
        if not (needs_settling(item) or self.config.dry_run):
            return None
        source, destination, copier = self.transfer.source, self.transfer.destination, self.copier

        def prepare(attempts: Attempts) -> CopyItem | FileResult:
            read = not self.config.dry_run or self.config.verifying
            settled = (
                settle(item, source, destination, attempts, copier.request, read) if needs_settling(item) else item
            )
            if isinstance(settled, FileResult) or not self.config.dry_run:
                return settled
            if settled.source is None:  # an object row HEAD's the source when it is settled
                raise AssertionError("a settled item knows its source")
            return would_copy(settled, copier.planned_parts(settled.source), attempts)

        return prepare

    def _landed(self, batch: Batch, index: int, done: Future) -> None:
        error = done.exception()
        if error is None:
            self._decided(batch, index, done.result())
        else:  # the copier isolates files; this is the pool refusing work (shut down)
            self._decided(batch, index, _lost(batch.items[index], error))

    def _delete(self, batch: Batch, deletes: list[tuple[int, DeleteItem]]) -> None:
        if self.config.dry_run:
            now = time.time()
            for index, item in deletes:
                self._decided(
                    batch,
                    index,
                    FileResult(
                        "",
                        item.destination.uri,
                        WOULD_DELETE,
                        size=item.size,
                        started=now,
                        ended=now,
                        detail="not in the source",
                        line=item.line,
                    ),
                )
            return
        results = self.copier.delete([item for _, item in deletes])
        for (index, _), result in zip(deletes, results, strict=True):
            self._decided(batch, index, result)

    def set_execute(self, execute: Execute | None) -> None:
        """Who runs the batches submitted from now on (a head start's threads hand over
        to the flow's task runs)."""
        self._execute = execute

    def _default_execute(self, batch: Batch) -> Running:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._in_flight, thread_name_prefix="s3flow-batch")
        return _Done(self._threads.submit(self.execute_batch, batch))

    def run(self) -> Outcome:
        """Plan and copy at once: batches go out while listings still stream, with at most
        2 x batches_in_flight waiting, so memory stays bounded."""
        planner = Planner(self.config, self.transfer.source, self.transfer.destination)
        batcher = Batcher(self.config)
        pending: deque[tuple[Batch, Running]] = deque()
        stopped: BaseException | None = None
        numbers = itertools.count(1)

        def harvest(keep: int, deadline: float | None = None) -> None:
            """Finished batches, oldest first; wait while more than `keep` are pending.
            Past the deadline (a cancel's grace) files still in flight get their result."""
            while pending and (len(pending) > keep or pending[0][1].wait(0)):
                batch, running = pending[0]
                done = running.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                for index, item in batch.open_items():
                    self._decided(batch, index, _in_flight(item, self._grace) if not done else _lost(item, batch.error))
                pending.popleft()  # only now: a signal while waiting loses nothing

        def submit(batch_items: list) -> None:
            batch = Batch(next(numbers), batch_items)
            pending.append((batch, (self._execute or self._default_execute)(batch)))

        try:
            for planned in planner.plan(self.transfer.rows, self.transfer.missing_buckets):
                self.planned += 1
                if isinstance(planned, FileResult):
                    self._emit(planned)
                else:
                    self.planned_bytes += planned.size
                    for batch_items in batcher.add(planned):
                        submit(batch_items)
                        harvest(keep=2 * self._in_flight)
                if self.cancelled:
                    break
        except self._stop_signals as signal:
            stopped = signal
            self.cancel()
        self.listing = False
        deadline = time.monotonic() + self._grace if self.cancelled else None
        while True:  # a second signal while winding down must not lose the results
            try:
                for batch_items in batcher.flush():
                    submit(batch_items)
                harvest(keep=0, deadline=deadline)
                break
            except self._stop_signals as signal:
                stopped = stopped or signal
                self.cancel()
                deadline = deadline or time.monotonic() + self._grace
        if self.cancelled:
            for result in cancelled_rows(self.transfer.rows, planner.rows_done):
                self._emit(result)
        slots = self.copier.slots
        return Outcome(
            self.summary, planner.listed_pages, planner.excluded, self.cancelled, stopped, slots.slowdowns, slots.lowest
        )


class HeadStart:
    """A transfer's copies begun the moment it is checked, before Prefect has loaded.

    `s3flow transfer` spends seconds importing Prefect and creating its flow run; the
    copies need none of it. So the CLI starts the runner at once, with HEAD_START_SLOTS
    requests in flight at most (the global concurrency limit is not held yet), on
    threads, keeping each result. The flow run then adopts it (`adopt`): every result
    so far goes to its recorders in order and the rest as they come, later batches
    run as its copy-batch task runs, and the slots grow to what the run was granted.

    | phase              | slots                | batches run on | results go to              |
    |--------------------|----------------------|----------------|----------------------------|
    | before the flow run| HEAD_START_SLOTS     | threads        | kept here, in order        |
    | adopted            | the granted slots    | task runs      | the run's recorders        |

    A process killed before the flow run exists loses those seconds' results from
    Prefect only: the copies themselves are complete and verified, and the next run of
    the transfer finds them in place (skipped)."""

    def __init__(self, transfer: Transfer, slots: int | None = None) -> None:
        self.runner = Runner(transfer, self._seen, stop_signals=())
        self.runner.copier.on_upload = self._upload
        self.runner.copier.slots.resize(min(slots or HEAD_START_SLOTS, transfer.config.max_concurrency))
        self._lock = threading.Lock()
        self._results: list[FileResult] = []
        self._uploads: list[tuple[ObjectRef, str, str]] = []
        self._on_result: OnResult | None = None
        self._on_upload: Callable[[ObjectRef, str, str], None] | None = None
        self._outcome: Outcome | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="s3flow-head-start", daemon=True)
        self.adopted = False

    def start(self) -> HeadStart:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._outcome = self.runner.run()
        except BaseException as exc:  # handed to whoever waits
            self._error = exc

    def _seen(self, result: FileResult) -> None:
        with self._lock:
            if self._on_result is None:
                self._results.append(result)
                return
            forward = self._on_result
        forward(result)

    def _upload(self, where: ObjectRef, upload_id: str, what: str) -> None:
        with self._lock:
            if self._on_upload is None:
                self._uploads.append((where, upload_id, what))
                return
            forward = self._on_upload
        forward(where, upload_id, what)

    def adopt(
        self,
        on_result: OnResult,
        on_upload: Callable[[ObjectRef, str, str], None] | None,
        execute: Execute | None,
        slots: int,
    ) -> Runner:
        """The flow run takes over (see the class's table); the runner, still running."""
        with self._lock:
            for where, upload_id, what in self._uploads:
                if on_upload is not None:
                    on_upload(where, upload_id, what)
            for result in self._results:
                on_result(result)
            self._results, self._uploads = [], []
            self._on_result, self._on_upload = on_result, on_upload or (lambda *args: None)
        self.runner.set_execute(execute)
        self.runner.copier.slots.resize(slots)
        self.adopted = True
        return self.runner

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """The runner's outcome once it has finished (None if still running at timeout)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._outcome

    def abandon(self) -> None:
        """Never adopted (the run could not start): cancel, wait, close."""
        self.runner.cancel()
        self._thread.join()
        self.runner.close()


HEAD_START_SLOTS = 8  # requests a head start sends at once before the run holds its slots


class _Done:
    """A concurrent.futures.Future as a Running."""

    def __init__(self, future: Future) -> None:
        self.future = future

    def wait(self, timeout: float | None) -> bool:
        wait([self.future], timeout)
        return self.future.done()


def _source_uri(item: CopyItem | DeleteItem) -> str:
    return item.source_ref.uri if isinstance(item, CopyItem) else ""


def _in_flight(item: CopyItem | DeleteItem, grace: float) -> FileResult:
    now = time.time()
    return FileResult(
        _source_uri(item),
        item.destination.uri,
        CANCELLED,
        started=now,
        ended=now,
        line=item.line,
        error_code="Cancelled",
        error_message=f"still in flight {grace:.0f} s after the cancel; it may or may not "
        "have been copied: the next run of this transfer checks it",
    )


def _lost(item: CopyItem | DeleteItem, error: BaseException | None) -> FileResult:
    """A file whose batch ended without its result: never silently dropped."""
    now = time.time()
    why = f"{type(error).__name__}: {error}" if error is not None else "its batch ended without a result"
    return FileResult(
        _source_uri(item),
        item.destination.uri,
        FAILED,
        started=now,
        ended=now,
        line=item.line,
        error_code=UNEXPECTED_CODE,
        error_message=why,
    )


def _fetch_manifest(storage: Storage, ref) -> bytes:
    try:
        return storage.get_bytes(ref)
    except S3Error as exc:
        raise InputError(f"cannot read the manifest {ref}: {exc.code}: {exc.message}") from None
