"""Copy objects server-side: CopyObject, or UploadPartCopy in parallel parts.

A Copier owns the threads of one transfer. Every S3 request takes one of
`max_concurrency` request slots while it runs, so a transfer never has more
requests in flight than that, however its files and parts are mixed; a file
waiting for its parts holds no slot, so files and parts cannot starve each other.

`Copier.cancel()` stops a transfer without leaving anything half-done:

| the file when cancel() is called   | its result                                             |
|------------------------------------|--------------------------------------------------------|
| not started, or still in HEADs     | cancelled: nothing was written                         |
| a CopyObject already sent          | copied (one request: it finishes, and is checked)      |
| a multipart copy with parts left   | cancelled: no more parts are sent, the upload is aborted |
| all parts copied                   | copied: CompleteMultipartUpload is sent and checked    |
| waiting to retry (backoff)         | wakes at once, then as above                           |
| a delete not yet sent              | cancelled: not deleted                                 |

Small objects a listing found go first through the destination's copy lane
(storage.CopyLane: CopyObject over awscrt, a fraction of botocore's CPU per
request) when there is one: the batch's thread sends them, each holding a request
slot until S3 answers. An answer whose ETag is the source's is the file copied; any
other answer (an error, a throttle, another ETag) hands the file to the threaded
path below, which retries, verifies and records as for every other file, counting
the lane's try among its attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

from .config import MAX_SINGLE_COPY, TransferConfig
from .errors import THROTTLE_CODES, S3Error
from .layout import etag_parts, planned_parts, ranges, single_copy, source_part_size
from .plan import CopyItem, DeleteItem
from .record import CANCELLED, COPIED, DELETED, FAILED, FileResult, ObjectRef, Status
from .retry import Attempts, Retrier
from .storage import ARCHIVE_CLASSES, DELETE_BATCH, FULL_OBJECT_ALGORITHMS, ObjectInfo, Storage, Written

log = logging.getLogger("s3flow.copy")


class AdaptiveSlots:
    """Request slots that S3 can turn down: AIMD, as TCP does it.

    | event                        | requests allowed in flight                      |
    |------------------------------|--------------------------------------------------|
    | start                        | maximum (max_concurrency)                        |
    | S3 throttles (SlowDown, 503) | halved, at least 1; once per second at most, so  |
    |                              | a burst of throttled requests counts as one      |
    | `recover` requests succeed   | one more, up to the maximum                      |
    """

    def __init__(self, maximum: int, recover: int = 50, clock: Callable[[], float] = time.monotonic):
        self.maximum = self.limit = self.lowest = maximum
        self.recover = recover
        self.slowdowns = 0  # times the limit was cut
        self._clock = clock
        self._in_use = self._successes = 0
        self.on_free: Callable[[], None] | None = None  # told whenever a slot frees up
        self._last_cut = float("-inf")
        self._changed = threading.Condition()

    def __enter__(self) -> AdaptiveSlots:
        with self._changed:
            self._changed.wait_for(lambda: self._in_use < self.limit)
            self._in_use += 1
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def resize(self, maximum: int) -> None:
        """A new maximum (a head start's few slots, then the run's granted ones)."""
        with self._changed:
            self.maximum = maximum
            self.limit = min(max(self.limit, 1), maximum) if maximum < self.limit else maximum
            self.lowest = min(self.lowest, self.limit)
            self._changed.notify_all()
        if self.on_free is not None:
            self.on_free()

    def try_acquire(self) -> bool:
        """Take a slot if one is free now."""
        with self._changed:
            if self._in_use >= self.limit:
                return False
            self._in_use += 1
            return True

    def release(self) -> None:
        with self._changed:
            self._in_use -= 1
            self._changed.notify()
        if self.on_free is not None:
            self.on_free()

    def slow_down(self) -> None:
        with self._changed:
            now = self._clock()
            if now - self._last_cut < 1.0:
                return
            self._last_cut, self._successes = now, 0
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self.slowdowns += 1
            log.info("S3 asked to slow down: %d requests in flight at most", self.limit)

    def succeeded(self) -> None:
        with self._changed:
            self._successes += 1
            if self._successes >= self.recover and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0
                self._changed.notify()


class Copier:
    def __init__(
        self, config: TransferConfig, source: Storage, destination: Storage, retrier: Retrier | None = None
    ) -> None:
        self.config = config
        self.source = source
        self.destination = destination
        self._cancelled = threading.Event()
        self.retrier = retrier or Retrier(config, sleep=self._backoff)
        self.slots = AdaptiveSlots(config.max_concurrency)
        self.slots.on_free = self._pump
        self._lane_queue: deque[tuple[CopyItem, Future]] = deque()
        self._lane_lock = threading.Lock()
        self._pumping = threading.local()
        # Learned per transfer: which copy of a multipart source (<= 5 GiB) gives the
        # destination the source's ETag on this store. S3 keeps it for part copies in the
        # source's layout; SeaweedFS keeps it for a single CopyObject instead. A copy
        # whose ETag differs is checked by reading both objects, so the cheaper way wins.
        self._single_keeps_etag: bool | None = None  # None: not seen yet
        self._parts_keep_etag: bool | None = None
        self._probe = threading.Lock()  # held by the first part copy until its ETag is known
        self._probed = threading.Event()
        self.on_bytes: Callable[[int], None] | None = None  # told of bytes written, part by part
        self.on_upload: Callable[[ObjectRef, str, str], None] | None = None  # (where, upload id, UPLOAD_*)
        self._files = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="s3flow-file")
        self._parts = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="s3flow-part")

    def _backoff(self, seconds: float) -> None:
        """A retry's wait, which a cancel cuts short."""
        self._cancelled.wait(seconds)

    def close(self) -> None:
        self._files.shutdown(wait=True, cancel_futures=True)
        self._parts.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        """Stop the transfer as the module's table says; safe from any thread."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _go(self, what: str = "the transfer was cancelled before this file was copied") -> None:
        if self._cancelled.is_set():
            raise S3Error(CANCELLED_CODE, what)

    def __enter__(self) -> Copier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, batch: Iterable[CopyItem | DeleteItem]) -> list[FileResult]:
        """Copy (or delete) every item of a batch and wait; one result per file, copies
        first, in batch order. The transfer's runner uses `submit` instead."""
        batch = list(batch)
        copies = [self.submit(item) for item in batch if isinstance(item, CopyItem)]
        deletes = self.delete([item for item in batch if isinstance(item, DeleteItem)])
        return [future.result() for future in copies] + deletes

    def submit(self, item: CopyItem, prepare: Callable[[Attempts], CopyItem | FileResult] | None = None) -> Future:
        """A file's result to come: through the copy lane if it can take it, else a thread.
        `prepare`, if given, runs first on the file's thread (the plan's HEADs of an object
        row) and gives the item to copy, or the file's result (a skip)."""
        source = item.source
        if (
            prepare is not None
            or self.destination.copy_lane is None
            or source is None
            or source.size > LANE_MAX_SIZE
            or source.needs_restore
            or not single_copy(self.config, source.size, source.etag)
            or self.cancelled
        ):
            return self._files.submit(self._prepared_copy, item, prepare)
        result: Future = Future()
        with self._lane_lock:
            self._lane_queue.append((item, result))
        self._pump()
        return result

    def _pump(self) -> None:
        """Send queued lane copies while request slots are free. Called when a file is
        queued and whenever a slot frees up, from whichever thread frees it: S3's answer
        on the lane's I/O thread sends the next copy at once, with no thread hand-off."""
        if getattr(self._pumping, "on", False):
            return  # this thread is already in the loop below (a send that failed at once)
        self._pumping.on = True
        try:
            while True:
                with self._lane_lock:
                    if not self._lane_queue or not (self.cancelled or self.slots.try_acquire()):
                        return
                    item, result = self._lane_queue.popleft()
                lane = self.destination.copy_lane
                if self.cancelled or lane is None:  # cancelled, or the lane gave up: threads do it
                    if not self.cancelled:
                        self.slots.release()
                    self._hand_over(item, result, time.time(), None)
                    continue
                started = time.time()
                source = _listed(item)
                sent = lane.copy_object(source, item.destination, destination_properties(self.config, source))
                sent.add_done_callback(partial(self._landed, item, started, result=result))
        finally:
            self._pumping.on = False

    def _landed(self, item: CopyItem, started: float, sent: Future, result: Future) -> None:
        """The lane's answer for one file (on the lane's I/O thread: nothing slow here)."""
        error = sent.exception()
        source = _listed(item)
        if error is None and sent.result().etag == source.etag:
            written = sent.result()
            result.set_result(
                FileResult(
                    item.source_ref.uri,
                    item.destination.uri,
                    COPIED,
                    size=source.size,
                    attempts=1,
                    started=started,
                    ended=time.time(),
                    detail="CopyObject; ETag matches the source",
                    etag=source.etag,
                    line=item.line,
                    parts=1,
                    checksum=written.checksum,
                    requests=1,
                    evidence="ETag",
                    destination_etag=written.etag,
                )
            )
            self.slots.succeeded()
            if self.on_bytes is not None:
                self.on_bytes(source.size)
        elif isinstance(error, S3Error) and not error.transient and error.code not in LANE_SUSPECT_CODES:
            result.set_result(
                FileResult(  # S3's final word (AccessDenied, NoSuchKey...): no retry
                    item.source_ref.uri,
                    item.destination.uri,
                    FAILED,
                    size=source.size,
                    attempts=1,
                    started=started,
                    ended=time.time(),
                    error_code=error.code,
                    error_message=error.message or error.describe(),
                    etag=source.etag,
                    line=item.line,
                    requests=1,
                )
            )
        else:
            if isinstance(error, S3Error) and error.code in THROTTLE_CODES:
                self.slots.slow_down()
            self._hand_over(item, result, started, sent)
        self.slots.release()

    def _hand_over(self, item: CopyItem, result: Future, started: float, sent: Future | None) -> None:
        """The threaded path takes the file from the lane: a retry of the lane's failed
        try, or (after a 200 with another ETag) the check of the copy the lane made."""
        attempts = Attempts()
        attempts.requests = 0 if sent is None else 1
        if sent is not None and sent.exception() is not None:
            attempts.retries = 1  # the lane's try failed: the threaded path's first try is the second
        copied = sent.result() if sent is not None and sent.exception() is None else None
        try:
            done = self._files.submit(self._isolated, item, attempts, started, copied)
        except RuntimeError as exc:  # the pool is shut down: the run is over
            result.set_exception(exc)
            return
        done.add_done_callback(lambda done: _pass_on(done, result))

    def request(self, attempts: Attempts, request: Callable, *args):
        """One S3 request under this transfer's slots and retries (the plan's HEADs use it)."""
        return self._request(attempts, request, *args)

    def _request(self, attempts: Attempts, request: Callable, *args):
        """One S3 request, retried on transient errors, holding a request slot per try."""

        def slotted(*call_args):
            with self.slots:
                try:
                    answer = request(*call_args)
                except S3Error as exc:
                    if exc.code in THROTTLE_CODES:
                        self.slots.slow_down()
                    raise
            self.slots.succeeded()
            return answer

        return self.retrier.call(slotted, *args, attempts=attempts)

    def _prepared_copy(self, item: CopyItem, prepare: Callable[[Attempts], CopyItem | FileResult] | None) -> FileResult:
        started, attempts = time.time(), Attempts()
        if prepare is not None:
            try:
                self._go()
                prepared = prepare(attempts)
            except S3Error as exc:
                return _result(
                    item, item.source, attempts, started, _status_of(exc), exc.code, exc.message or exc.describe()
                )
            except Exception as exc:  # one file's surprise is that file's result
                return _unexpected(item, exc, started)
            if isinstance(prepared, FileResult):
                return prepared
            item = prepared
        return self._isolated(item, attempts, started)

    def _isolated(
        self,
        item: CopyItem,
        attempts: Attempts | None = None,
        started: float | None = None,
        copied: Written | None = None,
    ) -> FileResult:
        """copy(), where an unexpected exception fails this file alone, named in its error."""
        try:
            return self.copy(item, attempts, started, copied)
        except Exception as exc:  # never the neighbours' result
            log.exception("unexpected error copying %s", item.source_ref)
            return _unexpected(item, exc, started or time.time())

    def planned_parts(self, source: ObjectInfo) -> int:
        """How many requests would write this source's copy (1: one CopyObject), as far
        as this transfer knows how the store keeps ETags: what a dry run reports."""
        return 1 if self._single_instead(source) else planned_parts(self.config, source.size, source.etag)

    def copy(
        self,
        item: CopyItem,
        attempts: Attempts | None = None,
        started: float | None = None,
        copied: Written | None = None,
    ) -> FileResult:
        """Copy one file, retrying each request. `attempts` and `started` carry on from
        the copy lane's try; `copied` is S3's answer to a CopyObject the lane made, so
        only its check is left. S3's errors are the file's result; anything else raises
        (the caller's `_isolated` makes it this file's failure)."""
        attempts, started = attempts or Attempts(), started or time.time()
        source = item.source
        probing = False
        try:
            if copied is None:
                self._go()
            source = self._current_source(item, attempts)
            if source.needs_restore:
                return _result(
                    item,
                    source,
                    attempts,
                    started,
                    FAILED,
                    "InvalidObjectState",
                    f"the source is in {source.storage_class}: restore it (RestoreObject) before copying",
                )
            if copied is None:
                self._go()
            probing = self._await_probe(source)
            detail, parts, written = self._write(source, item.destination, attempts, copied)
            proof, checksum = self._prove_by_checksum(source, item.destination, written, attempts)
        except S3Error as exc:
            return _result(item, source, attempts, started, _status_of(exc), exc.code, exc.message or exc.describe())
        finally:
            if probing:  # however the probe ended, nobody waits for it any more
                self._probed.set()
        if item.reason and item.reason != "new":
            detail = f"{item.reason}: {detail}"
        by_content = "ETag" if written.etag == source.etag else "MD5 of every range"  # what _verify did
        return _result(
            item,
            source,
            attempts,
            started,
            COPIED,
            detail=detail,
            parts=parts,
            checksum=checksum,
            evidence="; ".join(filter(None, (by_content, proof, item.evidence))),
            destination_etag=written.etag,
        )

    def _prove_by_checksum(
        self, source: ObjectInfo, destination: ObjectRef, written: Written, attempts: Attempts
    ) -> tuple[str, str]:
        """Where the source has a full-object checksum (a HEAD found it) and the copy kept
        that algorithm, the two must be equal: proof of every byte with none read. The
        copy's comes from S3's answer, else from a HEAD of the copy. A mismatch deletes the
        copy and fails the file. (evidence, the copy's checksum as recorded)."""
        want = source.full_checksum
        algorithm = want.partition(":")[0]
        if not want or (self.config.checksum_algorithm or algorithm) != algorithm:
            return "", written.checksum
        got = written.full_checksum if written.checksum.startswith(f"{algorithm}:") else ""
        if not got:
            copy = self._request(attempts, self.destination.head, destination)
            got = copy.full_checksum if copy is not None and copy.checksum.startswith(f"{algorithm}:") else ""
            if not got:
                return "", written.checksum or (copy.checksum if copy is not None else "")
        if got != want:
            self._discard(destination)
            raise S3Error(
                "ChecksumMismatch",
                f"the copy's {algorithm} full-object checksum {got.partition(':')[2]} differs from the source's "
                f"{want.partition(':')[2]}; the copy was deleted",
                destination.bucket,
                destination.key,
            )
        return f"{algorithm} full-object", got

    def _write(
        self, source: ObjectInfo, destination: ObjectRef, attempts: Attempts, copied: Written | None
    ) -> tuple[str, int, Written]:
        """Write the copy with one CopyObject or in parts (layout.py, _single_instead), and
        check it; (what was done, part count, S3's answer)."""
        single = single_copy(self.config, source.size, source.etag)
        instead = not single and self._single_instead(source)
        if not (single or instead):
            return self._copy_multipart(source, destination, attempts)
        written = copied or self._request(
            attempts, self.destination.copy_object, source, destination, destination_properties(self.config, source)
        )
        if self.on_bytes is not None:
            self.on_bytes(source.size)
        if not instead:
            check = self._verify(source, destination, written.etag, source.size or 1, attempts)
            return f"CopyObject{_why_single(self.config, source)}; {check}", 1, written
        self._single_keeps_etag = written.etag == source.etag
        if not self._single_keeps_etag and self._parts_keep_etag is not False:
            # Copied again, in parts, so the ETag is the source's: a later sync would
            # otherwise see another ETag and copy it again.
            detail, parts, written = self._copy_multipart(source, destination, attempts)
            return f"{detail} (a single CopyObject lost the ETag on this store)", parts, written
        check = self._verify(source, destination, written.etag, source.size or 1, attempts)
        why = ": this store keeps the ETag of a single copy" if self._single_keeps_etag else ""
        return f"CopyObject (instead of part copies{why}); {check}", 1, written

    def _current_source(self, item: CopyItem, attempts: Attempts) -> ObjectInfo:
        """The source's facts: from the listing, or a HEAD where the listing cannot tell
        (object rows, and archived objects, whose restore state only HEAD reports)."""
        if item.source is not None and item.source.storage_class not in ARCHIVE_CLASSES:
            return item.source
        source = self._request(attempts, self.source.head, item.source_ref)
        if source is None:
            raise S3Error("NoSuchKey", f"the source object {item.source_ref} does not exist")
        return source

    def _copy_multipart(
        self, source: ObjectInfo, destination: ObjectRef, attempts: Attempts
    ) -> tuple[str, int, Written]:
        """Copy in parts, then check the result; (what was done, part count, S3's answer)."""
        if not source.properties:  # a listing found it: fetch what CreateMultipartUpload must carry
            fresh = self._request(attempts, self.source.head, source.ref)
            if fresh is None or fresh.etag != source.etag:
                raise S3Error(
                    "PreconditionFailed", "the source changed since it was listed", source.ref.bucket, source.ref.key
                )
            source = fresh
        part, layout = self._layout(source, attempts)
        tags = self._request(attempts, self.source.tags, source.ref)
        upload_id = self._request(
            attempts,
            self.destination.create_multipart,
            source,
            destination,
            tags,
            {**destination_properties(self.config, source), **upload_checksum(self.config, source)},
        )
        self._upload(destination, upload_id, UPLOAD_STARTED)

        def one_part(number: int, first: int, last: int) -> Written:
            self._go("cancelled part-way through a multipart copy: the upload was aborted, nothing was written")
            written = self._request(
                attempts, self.destination.copy_part, source, destination, upload_id, number, first, last
            )
            if self.on_bytes is not None:
                self.on_bytes(last - first + 1)
            return written

        try:
            parts = self._each_range(source.size, part, attempts, one_part)
            written = self._request(attempts, self.destination.complete_multipart, destination, upload_id, parts)
        except BaseException:
            self._abort(destination, upload_id)
            raise
        self._upload(destination, upload_id, UPLOAD_COMPLETED)
        if layout == "source layout":
            self._parts_keep_etag = written.etag == source.etag
        self._probed.set()  # its ETag is known: the waiting copies go on
        check = self._verify(source, destination, written.etag, part, attempts)
        return f"multipart, {len(parts)} parts ({layout}); {check}", len(parts), written

    def _await_probe(self, source: ObjectInfo) -> bool:
        """The first multipart source (<= 5 GiB) of a transfer is the probe: the others
        wait for its ETag (one object's copy time) so they can pick the cheaper way.
        True for the probe itself."""
        if (
            self._probed.is_set()
            or single_copy(self.config, source.size, source.etag)
            or source.size > MAX_SINGLE_COPY
            or etag_parts(source.etag) is None
        ):
            return False
        if self._probe.acquire(blocking=False):
            return True
        while not self._probed.wait(1.0):
            self._go()  # a cancel wakes the waiters
        return False

    def _single_instead(self, source: ObjectInfo) -> bool:
        """Copy this multipart source (<= 5 GiB) with one CopyObject, not in parts:

        | store                      | part_copies | first multipart source | the others          |
        |----------------------------|-------------|------------------------|---------------------|
        | AWS                        | auto        | parts (S3 keeps their  | one CopyObject only |
        |                            |             | ETag, and documents    | if parts lost it    |
        |                            |             | that CopyObject won't) |                     |
        | other (SeaweedFS, MinIO..) | auto        | one CopyObject         | the same while it   |
        |                            |             |                        | keeps the ETag, else parts |
        | any                        | always      | parts                  | parts               |

        Where a single copy keeps the ETag, it is one request instead of N: SeaweedFS
        spends half the CPU on it, and 960 MiB in 3 objects copied in 2.9 s, not 6.4 s."""
        if (
            self.config.part_copies == "always"
            or source.size > MAX_SINGLE_COPY
            or etag_parts(source.etag) is None
            or self._single_keeps_etag is False
        ):
            return False
        return self._parts_keep_etag is False or not self.destination.is_aws

    def _layout(self, source: ObjectInfo, attempts: Attempts) -> tuple[int, str]:
        """The part size to copy with, and whose layout it is (see layout.py)."""
        count = etag_parts(source.etag)
        if self.config.keep_source_layout and count:
            first = self._request(attempts, self.source.first_part_size, source.ref)
            part = source_part_size(source.size, count, first)
            if part:
                return part, "source layout"
        return self.config.part_size_for(source.size), "our layout"

    def _verify(self, source: ObjectInfo, destination: ObjectRef, etag: str, part: int, attempts: Attempts) -> str:
        """Equal ETags, or else equal MD5s of every range; a copy that differs is deleted."""
        if etag == source.etag:
            return "ETag matches the source"

        def same(number: int, first: int, last: int) -> bool:
            theirs = self._request(attempts, self.source.range_md5, source.ref, first, last, source.etag)
            ours = self._request(attempts, self.destination.range_md5, destination, first, last)
            return theirs == ours

        matches = self._each_range(source.size, part, attempts, same)
        if all(matches):
            return "ETag differs (store's multipart scheme or layout): content verified by MD5 of every range"
        first_bad = ranges(source.size, part)[matches.index(False)]
        self._discard(destination)
        raise S3Error(
            "ChecksumMismatch",
            f"bytes {first_bad[0]}-{first_bad[1]} of the copy differ from the source; the copy was deleted",
            destination.bucket,
            destination.key,
        )

    def _discard(self, destination: ObjectRef) -> None:
        """Delete a copy that proved different from its source."""
        try:
            self._request(Attempts(), self.destination.delete, destination)
        except S3Error as exc:
            log.error("could not delete the bad copy %s: %s", destination, exc)

    def _each_range(self, size: int, part: int, attempts: Attempts, work: Callable) -> list:
        """work(number, first, last) for every part of an object, part_concurrency at a
        time on the part pool; the first real error is raised after all have stopped."""
        window = threading.BoundedSemaphore(self.config.part_concurrency)
        failed = threading.Event()

        def one(number: int, first: int, last: int):
            try:
                if failed.is_set():
                    raise _Skipped()
                return work(number, first, last)
            finally:
                window.release()

        futures: list[Future] = []
        for number, (first, last) in enumerate(ranges(size, part), 1):
            window.acquire()
            if failed.is_set():
                window.release()
                break
            future = self._parts.submit(one, number, first, last)
            future.add_done_callback(lambda f: None if f.cancelled() or not f.exception() else failed.set())
            futures.append(future)
        wait(futures)  # after a failure the parts not yet started return at once
        for future in futures:  # the first real error, not a part skipped because of it
            error = future.exception()
            if error is not None and not isinstance(error, _Skipped):
                raise error
        return [future.result() for future in futures]

    def _abort(self, destination: ObjectRef, upload_id: str) -> None:
        try:
            self._request(Attempts(), self.destination.abort_multipart, destination, upload_id)
        except S3Error as exc:
            log.error("could not abort multipart upload %s of %s: %s", upload_id, destination, exc)
            return  # still open: the record says started, and the next run aborts it
        self._upload(destination, upload_id, UPLOAD_ABORTED)

    def _upload(self, destination: ObjectRef, upload_id: str, what: str) -> None:
        """Tell whoever records the transfer that a multipart upload started or closed:
        an upload recorded as started and never closed is one a crash left open."""
        if self.on_upload is not None:
            self.on_upload(destination, upload_id, what)

    def delete(self, items: list[DeleteItem]) -> list[FileResult]:
        results = []
        for bucket in sorted({item.destination.bucket for item in items}):
            mine = [item for item in items if item.destination.bucket == bucket]
            for start in range(0, len(mine), DELETE_BATCH):
                results.extend(self._delete_chunk(bucket, mine[start : start + DELETE_BATCH]))
        return results

    def _delete_chunk(self, bucket: str, chunk: list[DeleteItem]) -> list[FileResult]:
        attempts, started = Attempts(), time.time()
        if self.cancelled:
            return [
                FileResult(
                    "",
                    item.destination.uri,
                    CANCELLED,
                    size=item.size,
                    started=started,
                    ended=started,
                    error_code=CANCELLED_CODE,
                    error_message="the transfer was cancelled before this object was deleted",
                    detail="not in the source",
                    line=item.line,
                )
                for item in chunk
            ]
        try:
            errors = self._request(
                attempts, self.destination.delete_objects, bucket, [item.destination.key for item in chunk]
            )
        except S3Error as exc:
            errors = {item.destination.key: f"{exc.code}: {exc.message}" for item in chunk}
        except Exception as exc:  # these files' result, not the batch's
            errors = {item.destination.key: f"{UNEXPECTED_CODE}: {type(exc).__name__}: {exc}" for item in chunk}
        ended = time.time()
        results = []
        for item in chunk:
            code, _, message = errors.get(item.destination.key, "").partition(": ")
            results.append(
                FileResult(
                    "",
                    item.destination.uri,
                    FAILED if code else DELETED,
                    size=item.size,
                    attempts=attempts.tries,
                    started=started,
                    ended=ended,
                    error_code=code,
                    error_message=message or ("delete failed" if code else ""),
                    detail="not in the source",
                    line=item.line,
                    requests=attempts.requests,
                )
            )
        return results


def destination_properties(config: TransferConfig, source: ObjectInfo) -> dict:
    """What to set on the destination object:

    | property      | given                  | not given                                         |
    |---------------|------------------------|---------------------------------------------------|
    | storage class | --storage-class        | the source's, except archive classes (-> STANDARD) |
    | encryption    | --sse, --sse-kms-key-id | the destination bucket's default encryption (S3's rule for copies) |
    | ACL           | --acl                  | the destination bucket's default (owner-only)     |
    | checksum      | --checksum (replaces   | the source's, kept (CopyObject keeps it when no   |
    |               | the source's)          | algorithm is sent; parts: upload_checksum)        |
    """
    keep = source.storage_class not in ("STANDARD", *ARCHIVE_CLASSES)
    return {
        "StorageClass": config.storage_class or (source.storage_class if keep else None),
        "ServerSideEncryption": config.sse,
        "SSEKMSKeyId": config.sse_kms_key_id,
        "ACL": config.acl,
        "ChecksumAlgorithm": config.checksum_algorithm,
    }


def upload_checksum(config: TransferConfig, source: ObjectInfo) -> dict:
    """The checksum a multipart copy asks for when --checksum is not given: the source's
    algorithm, as a full-object checksum where the source has one (CRC64NVME, CRC32,
    CRC32C: the same value whatever the part layout, so it proves the copy), else as a
    composite one (equal in the source's own part layout)."""
    algorithm = source.checksum.partition(":")[0]
    if config.checksum_algorithm or not algorithm:
        return {}
    if source.full_checksum and algorithm in FULL_OBJECT_ALGORITHMS:
        return {"ChecksumAlgorithm": algorithm, "ChecksumType": "FULL_OBJECT"}
    if source.full_checksum:  # SHA-1/SHA-256 of a single-part source: parts cannot keep it
        return {}
    return {"ChecksumAlgorithm": algorithm}


CANCELLED_CODE = "Cancelled"  # the error code of a cancelled file's result
# The largest object sent through the copy lane: above it, a request's CPU is
# nothing next to S3's copying time, and botocore's path has the longer timeouts.
LANE_MAX_SIZE = 64 * 1024 * 1024
# Answers that may be the lane's own doing (how it addressed or signed the request,
# a redirect botocore would follow): botocore tries again rather than failing the file.
LANE_SUSPECT_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "TemporaryRedirect",
        "301",
        "307",
        "400",
        "InvalidRequest",
        "InvalidArgument",
        "NotImplemented",
        "MalformedXML",
        "IllegalLocationConstraintException",
        "InvalidURI",
    }
)


# What happened to a multipart upload (Copier.on_upload).
UPLOAD_STARTED, UPLOAD_COMPLETED, UPLOAD_ABORTED = "started", "completed", "aborted"
UNEXPECTED_CODE = "Unexpected"  # an exception s3flow did not expect: a bug, named in the message


def _result(
    item: CopyItem,
    source: ObjectInfo | None,
    attempts: Attempts,
    started: float,
    status: Status,
    code: str = "",
    message: str = "",
    detail: str = "",
    parts: int = 0,
    checksum: str = "",
    evidence: str = "",
    destination_etag: str = "",
) -> FileResult:
    return FileResult(
        item.source_ref.uri,
        item.destination.uri,
        status,
        size=source.size if source else None,
        attempts=attempts.tries,
        started=started,
        ended=time.time(),
        error_code=code,
        error_message=message,
        detail=detail,
        etag=source.etag if source else "",
        line=item.line,
        parts=parts,
        checksum=checksum,
        requests=attempts.requests,
        evidence=evidence,
        destination_etag=destination_etag,
        md5=item.md5,
        sha256=item.sha256,
        event_time=item.event_time,
    )


def _status_of(error: S3Error) -> Status:
    return CANCELLED if error.code == CANCELLED_CODE else FAILED


def _unexpected(item: CopyItem, exc: BaseException, started: float) -> FileResult:
    source = item.source
    return FileResult(
        item.source_ref.uri,
        item.destination.uri,
        FAILED,
        size=source.size if source else None,
        attempts=1,
        started=started,
        ended=time.time(),
        error_code=UNEXPECTED_CODE,
        error_message=f"{type(exc).__name__}: {exc}",
        etag=source.etag if source else "",
        line=item.line,
        md5=item.md5,
        sha256=item.sha256,
        event_time=item.event_time,
    )


def _why_single(config: TransferConfig, source: ObjectInfo) -> str:
    """Say why a multipart source went as one CopyObject, so no option looks ignored."""
    if etag_parts(source.etag) is None or config.is_multipart(source.size):
        return ""
    if not config.keep_source_layout:
        return " (--ignore-source-layout: at or below --multipart-threshold-mib, so one request, no parts to cut)"
    return " (at or below --multipart-threshold-mib)"


def _listed(item: CopyItem) -> ObjectInfo:
    """The source a listing found (the lane only takes those)."""
    if item.source is None:
        raise ValueError(f"{item.source_ref} has no listed source")
    return item.source


def _pass_on(done: Future, result: Future) -> None:
    error = done.exception()
    if error is None:
        result.set_result(done.result())
    else:
        result.set_exception(error)


class _Skipped(Exception):
    """A part not started because another part of the same object failed."""
