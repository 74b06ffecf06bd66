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
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from s3flow.errors import InputError
from s3flow.events import AWS_CERT_HOST, BadSignature, MalformedMessage, translate, verify_sns

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


@dataclass
class Counts:
    messages: int = 0
    events: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
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
    def __init__(self, queue_url: str, events: PrefectEvents, sqs_client=None, wait_seconds: int = 20) -> None:
        import boto3

        self.queue_url = queue_url
        self.events = events
        self.sqs = sqs_client or boto3.client("sqs")
        self.wait_seconds = wait_seconds
        self.counts = Counts()
        self.stopping = threading.Event()

    def run(self) -> None:
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
        """One receive; the messages deleted (their events all accepted, or nothing to send)."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds
        )
        messages = answer.get("Messages", [])
        done: list[dict] = []
        events: list[dict] = []
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
            events.extend(event.prefect_event() for event in found.events)
            done.append(message)
        try:
            self.events.send(events)
        except Exception:
            self.counts.add(failed=len(events))
            raise  # nothing deleted: SQS hands these messages out again
        self.counts.add(events=len(events))
        for event in events:
            log.info("bridge: %s s3://%s/%s", event["event"], event["payload"]["bucket"], event["payload"]["key"])
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(done)


class HttpBridge:
    """The HTTP endpoint; `handle` decides every request (status, reply) and is what tests call."""

    def __init__(
        self, events: PrefectEvents, secret: str | None = None, fetch=None, cert_host: re.Pattern = AWS_CERT_HOST
    ) -> None:
        self.events = events
        self.secret = secret
        self.fetch = fetch or _fetch
        self.cert_host = cert_host
        self.counts = Counts()
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
        events = [event.prefect_event() for event in found.events]
        try:
            self.events.send(events)
        except Exception as exc:
            self.counts.add(failed=len(events))
            log.error("bridge: events not delivered: %s", exc)
            return 503, {"error": "the Prefect API did not accept the events; deliver again"}
        self.counts.add(messages=1, events=len(events), skipped=len(found.skipped))
        return 200, {"events": len(events), "skipped": found.skipped}

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

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        return server


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
