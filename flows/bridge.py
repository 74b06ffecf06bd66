"""`s3flow bridge`: S3 event notifications in, Prefect events out, for a self-hosted
Prefect server (which has no webhooks; Prefect Cloud users take the webhook template
in deployments/ instead).

- `sqs`: long-polls a queue that receives a bucket's notifications (directly or through
  SNS). A message is deleted only after the Prefect API accepted all of its events, so
  a bridge that dies loses nothing: SQS hands the message out again. A message that is
  not an S3, SNS or EventBridge message stays in the queue (give the queue a redrive
  policy so such messages end in a dead-letter queue).
- `http`: accepts EventBridge (API destination) and SNS HTTP(S) deliveries. A request
  must carry the shared secret (`X-S3flow-Secret: SECRET` or `Authorization: Bearer
  SECRET`) or be an SNS message whose signature verifies; anything else gets 401, a
  body that is none of the known shapes 400, and no event. SNS subscription
  confirmations are confirmed (GET SubscribeURL) once verified.

Objects created close together go out in batches (`Batcher`): each object still gets its
own `aws.s3.object.created` event (the manifest-upload trigger, the event feed), and each
bucket's objects of a batch one `s3flow.objects.created` event, which starts one
replicate-objects run for all of them. A batch goes when no object came for
QUIET_SECONDS (a lone upload waits half a second), BATCH_SECONDS after its first
object, or at BATCH_OBJECTS objects, whichever comes first. A message (SQS) or a
request (HTTP) is acknowledged only once its batch was accepted by the Prefect API.

At-least-once delivery: SQS, SNS and EventBridge may deliver a message twice. Event
ids derive from S3's facts (the same S3 event, the same id), the bridge drops an
object it already delivered (the last REMEMBER ids), and a copy of an object already
replicated is skipped by the transfer (same ETag): nothing is copied twice.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from s3flow.errors import InputError
from s3flow.events import (
    AWS_CERT_HOST,
    BATCH_OBJECTS,
    BadSignature,
    MalformedMessage,
    ObjectCreated,
    batch_event,
    translate,
    verify_sns,
)

log = logging.getLogger("s3flow.bridge")


class PrefectEvents:
    """POST /api/events of the Prefect API this process is configured for."""

    def __init__(self, api_url: str | None = None, api_key: str | None = None, timeout: float = 30) -> None:
        from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

        self.api_url = (api_url or PREFECT_API_URL.value() or "").rstrip("/")
        if not self.api_url:
            from s3flow.errors import InputError

            raise InputError("the bridge needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
        key = api_key or PREFECT_API_KEY.value()
        headers = (
            {"Authorization": f"Bearer {key.get_secret_value() if hasattr(key, 'get_secret_value') else key}"}
            if key
            else {}
        )
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def send(self, events: list[dict]) -> None:
        """All of them accepted, or an exception (nothing may be taken as delivered)."""
        if not events:
            return
        answer = self._http.post(f"{self.api_url}/events", json=events)
        if answer.status_code >= 300:
            raise RuntimeError(f"the Prefect API answered {answer.status_code}: {answer.text[:300]}")


BATCH_SECONDS = 2.0  # a batch goes at most this long after its first object
QUIET_SECONDS = 0.5  # or once no object came for this long
REMEMBER = 100_000  # object event ids remembered as delivered (duplicates dropped)

Done = Callable[[BaseException | None], None]


class Batcher:
    """Object-created events to the Prefect API in batches (see the module's docstring).
    `submit` returns at once; `done(None)` is called once the objects' events were
    accepted, `done(error)` if they were not (then nothing counts as delivered)."""

    def __init__(
        self,
        events: PrefectEvents,
        window: float = BATCH_SECONDS,
        quiet: float = QUIET_SECONDS,
        most: int = BATCH_OBJECTS,
        counts: Counts | None = None,
    ) -> None:
        self.events = events
        self.window, self.quiet, self.most = window, quiet, most
        self.counts = counts or Counts()
        self._changed = threading.Condition()
        self._pending: dict[str, ObjectCreated] = {}  # by event id: a duplicate in one batch counts once
        self._waiting: list[Done] = []
        self._first = self._last = 0.0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._stopping = False
        self._failed: BaseException | None = None  # a part of the waiters' objects not delivered
        self._more = False  # the source said more objects are waiting
        self._sending = False
        self._sending_ids: set[str] = set()  # the batch being sent: a duplicate of it is dropped too
        self._thread = threading.Thread(target=self._loop, name="s3flow-batcher", daemon=True)
        self._thread.start()

    def submit(self, objects: list[ObjectCreated], done: Done, more: bool = False) -> None:
        """`more`: the source has more waiting (a full SQS receive), so the quiet rule
        waits for a receive that drains it (`drained`); the window still applies."""
        with self._changed:
            self._more = more
            fresh = [
                obj
                for obj in objects
                if obj.id not in self._seen and obj.id not in self._pending and obj.id not in self._sending_ids
            ]
            if len(fresh) < len(objects):
                self.counts.add(duplicates=len(objects) - len(fresh))
                log.info("bridge: %d object events already delivered: dropped", len(objects) - len(fresh))
            if fresh:
                now = time.monotonic()
                if not self._pending:
                    self._first = now
                self._last = now
                for obj in fresh:
                    self._pending[obj.id] = obj
                self._waiting.append(done)
                self._changed.notify_all()
                return
        done(None)  # nothing new: already delivered

    def drained(self) -> None:
        """The source has nothing more waiting: a quiet batch may go."""
        with self._changed:
            if self._more:
                self._more = False
                self._changed.notify_all()

    def _due(self) -> float | None:
        """Seconds until the pending batch must go (0: now); None: nothing pending."""
        if not self._pending:
            return None
        if self._stopping or len(self._pending) >= self.most:
            return 0.0
        now = time.monotonic()
        if self._more:
            return max(0.0, self._first + self.window - now)
        return max(0.0, min(self._first + self.window, self._last + self.quiet) - now)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while (due := self._due()) is None or due > 0:
                    if self._stopping and due is None:
                        return
                    self._changed.wait(due)
                items = list(self._pending.items())
                batch, self._pending = [obj for _, obj in items[: self.most]], dict(items[self.most :])
                waiting: list[Done] = []
                if not self._pending:  # the last part of what the waiters submitted
                    waiting, self._waiting = self._waiting, []
                self._sending = True
                self._sending_ids = {obj.id for obj in batch}
            try:
                self._send(batch, waiting)
            finally:
                with self._changed:
                    self._sending = False
                    self._sending_ids = set()
                    self._changed.notify_all()

    def _send(self, batch: list[ObjectCreated], waiting: list[Done]) -> None:
        events = [obj.prefect_event() for obj in batch]
        by_bucket: dict[str, list[ObjectCreated]] = {}
        for obj in batch:
            by_bucket.setdefault(obj.bucket, []).append(obj)
        events += [batch_event(objects) for objects in by_bucket.values()]
        error: BaseException | None = None
        try:
            self.events.send(events)
        except Exception as exc:  # handed to every waiter: their messages are not acknowledged
            error = self._failed = exc
            self.counts.add(failed=len(batch))
            log.error("bridge: %d object events not delivered: %s", len(batch), exc)
        else:
            self.counts.add(events=len(batch), batches=len(by_bucket))
            with self._changed:
                for obj in batch:
                    self._seen[obj.id] = None
                while len(self._seen) > REMEMBER:
                    self._seen.popitem(last=False)
            for bucket, objects in by_bucket.items():
                log.info("bridge: %d objects created in s3://%s: one batch event", len(objects), bucket)
        if waiting:  # a failure of any part of their objects is theirs
            error, self._failed = error or self._failed, None
            for done in waiting:
                done(error)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted has been sent (or refused); False on timeout."""
        with self._changed:
            self._first = self._last = time.monotonic() - self.window  # due now
            self._changed.notify_all()
            return self._changed.wait_for(lambda: not self._pending and not self._sending, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is pending, then stop."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)


@dataclass
class Counts:
    messages: int = 0
    events: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    duplicates: int = 0
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts: int) -> None:
        with self.lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


# SQS answers that retrying cannot change (decided by error code, as for S3: errors.py).
SQS_PERMANENT_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidAddress",
        "InvalidSecurity",
        "KmsAccessDenied",
        "KmsDisabled",
        "KmsNotFound",
    }
)


def sqs_permanent(error: BaseException) -> str | None:
    """Why an SQS error is permanent ("<code>: <message>"), or None if it may pass."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in SQS_PERMANENT_CODES:
            return f"{code}: {error.response.get('Error', {}).get('Message', '')}"
    return None


class SqsBridge:
    def __init__(
        self,
        queue_url: str,
        events: PrefectEvents,
        sqs_client=None,
        wait_seconds: int = 20,
        batcher: Batcher | None = None,
    ) -> None:
        import boto3

        self.queue_url = queue_url
        self.events = events
        self.sqs = sqs_client or boto3.client("sqs")
        self.wait_seconds = wait_seconds
        self.batcher = batcher or Batcher(events)
        self.counts = self.batcher.counts
        self.stopping = threading.Event()
        self._refused: BaseException | None = None  # the Prefect API refused a batch: back off
        self._stopped_by: InputError | None = None  # a receiver thread's permanent refusal

    def run(self, receivers: int = 1) -> None:
        """Poll until stopped, with `receivers` threads (a receive takes 10 messages at
        most: several keep up with a burst). See `_poll` for errors."""
        threads = [
            threading.Thread(target=self._poll_and_catch, name=f"s3flow-receiver-{n}", daemon=True)
            for n in range(1, receivers)
        ]
        for thread in threads:
            thread.start()
        try:
            self._poll()
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join(self.wait_seconds + 30)
        if self._stopped_by is not None:
            raise self._stopped_by

    def _poll_and_catch(self) -> None:
        try:
            self._poll()
        except InputError as exc:
            self._stopped_by = exc
            self.stopping.set()

    def _poll(self) -> None:
        """Poll until stopped. Transient trouble (throttling, 5xx, the network, the Prefect
        API away) backs off and goes on; SQS's permanent refusals (no such queue, access
        denied, bad credentials) stop the bridge with InputError: retrying cannot help."""
        log.info("bridge: polling %s, events to %s", self.queue_url, self.events.api_url)
        failures = 0
        while not self.stopping.is_set():
            try:
                self.poll_once()
                failures = 0
            except Exception as exc:  # sorted below: permanent stops, the rest waits
                if (why := sqs_permanent(exc)) is not None:
                    raise InputError(f"bridge: the queue {self.queue_url} refused: {why}") from None
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log.error("bridge: %s; trying again in %.0f s", exc, delay)
                self.stopping.wait(delay)

    def poll_once(self) -> int:
        """One receive; the messages taken (deleted once their events are accepted, at
        once when they carry none). A batch the Prefect API refused is raised here, on
        the next poll, so the bridge backs off; its messages stay in the queue."""
        refused, self._refused = self._refused, None
        if refused is not None:
            raise refused
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds
        )
        messages = answer.get("Messages", [])
        empty: list[dict] = []
        carrying: list[dict] = []
        objects: list[ObjectCreated] = []
        for message in messages:
            self.counts.add(messages=1)
            try:
                found = translate(message["Body"])
            except MalformedMessage as exc:
                self.counts.add(rejected=1)
                log.warning("bridge: message %s left in the queue: %s", message["MessageId"], exc)
                continue
            for why in found.skipped:
                self.counts.add(skipped=1)
                log.info("bridge: skipped in message %s: %s", message["MessageId"], why)
            (carrying if found.events else empty).append(message)
            objects.extend(found.events)
        self._delete(empty)
        if objects:
            self.batcher.submit(objects, lambda error: self._acknowledge(carrying, error), more=len(messages) >= 10)
        elif not messages:
            self.batcher.drained()
        return len(empty) + len(carrying)

    def _acknowledge(self, messages: list[dict], error: BaseException | None) -> None:
        if error is not None:
            self._refused = error  # SQS hands these messages out again after their visibility timeout
            return
        try:
            self._delete(messages)
        except Exception as exc:  # delivered again later: the bridge drops what it delivered
            log.error("bridge: could not delete %d delivered messages: %s", len(messages), exc)

    def _delete(self, messages: list[dict]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )


class HttpBridge:
    """The HTTP endpoint; `handle` decides every request (status, reply) and is what tests call."""

    def __init__(
        self,
        events: PrefectEvents,
        secret: str | None = None,
        fetch=None,
        cert_host: re.Pattern = AWS_CERT_HOST,
        batcher: Batcher | None = None,
    ) -> None:
        self.events = events
        self.secret = secret
        self.fetch = fetch or _fetch
        self.cert_host = cert_host
        self.batcher = batcher or Batcher(events)
        self.counts = self.batcher.counts
        self._certificates: dict[str, bytes] = {}

    def _certificate(self, url: str) -> bytes:
        if url not in self._certificates:
            self._certificates[url] = self.fetch(url)
        return self._certificates[url]

    def _has_secret(self, headers) -> bool:
        if not self.secret:
            return False
        given = headers.get("X-S3flow-Secret") or ""
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            given = given or auth[7:]
        return hmac.compare_digest(given.encode(), self.secret.encode())

    def handle(self, headers, body: bytes) -> tuple[int, dict]:
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        trusted = self._has_secret(headers)
        is_sns = (
            isinstance(message, dict)
            and message.get("Type") in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
            and "Signature" in message
        )
        if not trusted:
            if not is_sns:
                self.counts.add(rejected=1)
                return 401, {"error": "no valid secret and not a signed SNS message"}
            try:
                verify_sns(message, self._certificate, self.cert_host)
            except BadSignature as exc:
                self.counts.add(rejected=1)
                return 401, {"error": str(exc)}
        if not isinstance(message, dict):
            self.counts.add(rejected=1)
            return 400, {"error": "the body is not a JSON object"}
        if message.get("Type") == "SubscriptionConfirmation":
            return self._confirm(message)
        if message.get("Type") == "UnsubscribeConfirmation":
            return 200, {"confirmed": False}
        try:
            found = translate(message)
        except MalformedMessage as exc:
            self.counts.add(rejected=1)
            return 400, {"error": str(exc)}
        for why in found.skipped:
            log.info("bridge: skipped: %s", why)
        if found.events:
            sent = threading.Event()
            outcome: list[BaseException | None] = []

            def done(error: BaseException | None) -> None:
                outcome.append(error)
                sent.set()

            self.batcher.submit(found.events, done)
            if not sent.wait(self.batcher.window + 60) or outcome[0] is not None:
                return 503, {"error": "the Prefect API did not accept the events; deliver again"}
        self.counts.add(messages=1, skipped=len(found.skipped))
        return 200, {"events": len(found.events), "skipped": found.skipped}

    def _confirm(self, message: dict) -> tuple[int, dict]:
        url = message.get("SubscribeURL", "")
        try:
            answer = httpx.get(url, timeout=30)
            answer.raise_for_status()
        except Exception as exc:
            log.error("bridge: could not confirm the SNS subscription: %s", exc)
            return 502, {"error": f"confirming the subscription failed: {exc}"}
        log.info("bridge: confirmed the SNS subscription to %s", message.get("TopicArn"))
        return 200, {"confirmed": True}

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, reply = bridge.handle(self.headers, self.rfile.read(length))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # EventBridge delivers a burst hundreds at a time (default: 5)
            daemon_threads = True

        return Server((host, port), Handler)


def _fetch(url: str) -> bytes:
    answer = httpx.get(url, timeout=30)
    answer.raise_for_status()
    return answer.content


def run_until_signalled(stop) -> None:
    """Call stop() on SIGTERM or SIGINT (Ctrl-C)."""

    def handler(signum, frame):
        log.info("bridge: stopping (signal %d)", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def wait_forever(event: threading.Event) -> None:
    while not event.wait(1.0):
        pass
    time.sleep(0)
