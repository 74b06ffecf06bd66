"""Every file's result in Prefect within seconds of being decided, whatever the batch size.

A task run is the unit of scheduling (a batch of up to 2,000 files); the file is the
unit of truth. The engine hands each FileResult to `Recorder.add` the moment it is
decided (from whichever thread decided it); a thread of the flow's sends what came in,
every FLUSH_SECONDS:

| where in Prefect                                   | what                         | read by             |
|----------------------------------------------------|------------------------------|---------------------|
| table artifacts "s3flow file results: page N"      | the new rows, PAGE_ROWS at most per artifact (the UI renders one in seconds) | `s3flow status`, `history --scan-artifacts` |
| `s3flow.files.<status>` events (flows/history.py)  | the same rows, grouped by object | `s3flow history` |
| the `<base>-progress` artifact                     | files and bytes done (parts of copies in flight included), "listing" while listing; updated at least every LIVENESS_SECONDS, so its age tells a live run from a dead one | the UI, flows/resume.py |
| table artifacts "s3flow multipart uploads: page N" | each multipart upload started, completed or aborted (upload id, destination) | flows/resume.py: the next run aborts what a crash left open |

A write that fails loses nothing: the rows stay buffered and go with the next write,
and `close()` tries again before the run ends. A process killed outright loses at
most the last FLUSH_SECONDS of rows from Prefect (the next run of the transfer finds
those files copied at the destination, and skips them).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from s3flow.flows.history import History
from s3flow.flows.status import BATCH_MARK
from s3flow.record import FAILED, FileResult

_log = logging.getLogger(__name__)


def _logger():
    """The run's logger (the thread runs in the flow's context), else the module's."""
    try:
        return get_run_logger()
    except Exception:  # outside a run
        return _log


FLUSH_SECONDS = 1.0
PAGE_ROWS = 500  # rows per table artifact: a 10,000-row table took the UI 114 s to render
KEEP_ROWS = 1_000  # rows kept for the run's final -files table (failures first)
LIVENESS_SECONDS = 10.0  # the progress artifact moves at least this often while the run lives
UPLOADS_MARK = "s3flow multipart uploads"  # the description of an upload table artifact
WARN_EVERY = 30.0  # seconds between warnings while Prefect refuses writes


class Recorder:
    """The live, complete record of a run's files in Prefect (see the module's table)."""

    def __init__(
        self,
        history: History,
        trigger: str | Future,
        progress: Callable[[], tuple[float, str]] | None,
        progress_key: str | None,
        flush_seconds: float = FLUSH_SECONDS,
        uploads_key: str | None = None,
    ) -> None:
        self.history = history
        self._trigger = trigger  # what started the run; a Future while it is being looked up
        self.uploads_key = uploads_key
        self._progress = progress
        self._progress_key = progress_key
        self._progress_id: uuid.UUID | None = None
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._buffer: list[dict] = []
        self._uploads: list[dict] = []
        self._pages = self._upload_pages = 0
        self._shown = 0.0
        self.kept_failures: list[FileResult] = []
        self.kept: list[FileResult] = []
        self.unsent_since: float | None = None  # when writes began to fail
        self._warned = 0.0
        self._stop = threading.Event()
        context = contextvars.copy_context()  # the same Prefect settings, API and run
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="s3flow-recorder", daemon=True)
        self._thread.start()

    def add(self, result: FileResult) -> None:
        """A file's result, the moment it is decided (any thread; quick)."""
        row = result.row()
        with self._lock:
            self._buffer.append(row)
            if result.status == FAILED and len(self.kept_failures) < KEEP_ROWS:
                self.kept_failures.append(result)
            elif len(self.kept) < KEEP_ROWS:
                self.kept.append(result)

    def add_upload(self, destination, upload_id: str, what: str) -> None:
        """A multipart upload started, completed or aborted (copy.Copier.on_upload)."""
        row = {
            "event": what,
            "destination": str(destination),
            "upload_id": upload_id,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        with self._lock:
            self._uploads.append(row)

    @property
    def trigger(self) -> str:
        """What started the run, stamped on every row (looked up while the copies start)."""
        if isinstance(self._trigger, Future):
            try:
                self._trigger = str(self._trigger.result(timeout=30))
            except Exception as exc:  # a row without its trigger beats no row
                _logger().warning("could not tell what started this run: %s", exc)
                self._trigger = ""
        return str(self._trigger)

    def _stamped(self, rows: list[dict]) -> list[dict]:
        trigger = self.trigger
        for row in rows:
            if not row["trigger"]:
                row["trigger"] = trigger
        return rows

    def table_rows(self) -> list[dict]:
        """The rows of the final -files table: failures first, at most KEEP_ROWS."""
        with self._lock:
            kept = (self.kept_failures + self.kept)[:KEEP_ROWS]
        return self._stamped([r.row() for r in kept])

    def _loop(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush(quiet=True)

    def flush(self, quiet: bool = False) -> bool:
        """Send what is buffered; True if everything is in Prefect."""
        with self._lock:
            rows, self._buffer = self._buffer, []
            uploads, self._uploads = self._uploads, []
        self._stamped(rows)
        sent = 0
        try:
            if uploads:  # first: an upload's record must not wait behind thousands of rows
                self._upload_pages += 1
                create_table_artifact(
                    table=uploads, key=self.uploads_key, description=f"{UPLOADS_MARK}: page {self._upload_pages}"
                )
                uploads = []
            for start in range(0, len(rows), PAGE_ROWS):
                page = rows[start : start + PAGE_ROWS]
                self._pages += 1
                create_table_artifact(table=page, description=f"{BATCH_MARK}: page {self._pages}")
                sent = start + len(page)
            self.history.add(rows)
            self.history.flush()
            if rows or time.monotonic() - self._shown >= LIVENESS_SECONDS:
                self._show()
        except Exception as exc:  # the API away: keep the rows for the next write
            with self._lock:
                self._buffer = rows[sent:] + self._buffer
                self._uploads = uploads + self._uploads
            now = time.monotonic()
            self.unsent_since = self.unsent_since or now
            if not quiet or now - self._warned >= WARN_EVERY:
                self._warned = now
                _logger().warning(
                    "file results not yet in Prefect (%d kept, sent when the API answers): %s", len(self._buffer), exc
                )
            return False
        if self.unsent_since is not None:
            _logger().warning("Prefect answers again: the file results kept meanwhile are recorded")
            self.unsent_since = None
        return True

    def _show(self) -> None:
        if self._progress is None or self._progress_key is None:
            return
        percent, text = self._progress()
        self._shown = time.monotonic()
        if self._progress_id is None:
            self._progress_id = create_progress_artifact(percent, key=self._progress_key, description=text)
        else:
            update_progress_artifact(self._progress_id, percent, description=text)

    def close(self, tries: int = 10, wait: float = 3.0) -> bool:
        """Stop the thread and send the rest, trying for a while if the API is away."""
        self._stop.set()
        self._thread.join()
        for _ in range(tries):
            if self.flush():
                return True
            time.sleep(wait)
        _logger().error(
            "%d file results could not be recorded in Prefect: they are in this run's log", len(self._buffer)
        )
        for row in self._buffer:
            _logger().error("file result: %s", row)
        return False
