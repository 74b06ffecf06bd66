"""S3 notifications -> Prefect events, SNS signatures, and the HTTP and SQS bridges'
decisions, against a stand-in Prefect API on loopback that records what it accepts."""
from __future__ import annotations

import base64
import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from s3flow.events import (
    BadSignature,
    MalformedMessage,
    string_to_sign,
    translate,
    verify_sns,
)
from s3flow.flows.bridge import Batcher, HttpBridge, PrefectEvents, SqsBridge


def s3_record(key: str, name: str = "ObjectCreated:Put", bucket: str = "global-builds") -> dict:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-11-23T10:00:00.000Z",
            "eventName": name, "s3": {"bucket": {"name": bucket},
                                      "object": {"key": key, "size": 42, "eTag": "abc", "sequencer": "0A1"}}}


def test_keys_are_decoded_and_become_prefect_events():
    found = translate(json.dumps({"Records": [
        s3_record("builds/build+123%2Bfinal%21.zip"), s3_record("caf%C3%A9/a%2Fb+c.txt")]}))
    assert [e.key for e in found.events] == ["builds/build 123+final!.zip", "café/a/b c.txt"]
    event = found.events[0].prefect_event()
    assert event["event"] == "aws.s3.object.created"
    assert event["resource"]["prefect.resource.id"] == "aws.s3.bucket.global-builds"
    assert event["resource"]["aws.s3.key"] == "builds/build 123+final!.zip"
    assert event["payload"] == {"bucket": "global-builds", "key": "builds/build 123+final!.zip", "size": 42,
                                "etag": "abc", "event_time": "2026-11-23T10:00:00.000Z",
                                "event_name": "ObjectCreated:Put", "version_id": None}
    # the same S3 event delivered twice is the same Prefect event
    assert translate({"Records": [s3_record("builds/build+123%2Bfinal%21.zip")]}).events[0] \
        .prefect_event()["id"] == event["id"]


def test_sns_envelope_and_eventbridge_shapes():
    inner = json.dumps({"Records": [s3_record("a+b")]})
    assert translate({"Type": "Notification", "Message": inner}).events[0].key == "a b"
    bridge_event = {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                    "time": "2026-11-23T10:00:00Z", "detail": {
                        "bucket": {"name": "global-builds"}, "reason": "PutObject",
                        "object": {"key": "x%20y.zip", "size": 5, "etag": "e1"}}}
    [event] = translate(bridge_event).events
    assert (event.bucket, event.key, event.size, event.event_name) == (
        "global-builds", "x y.zip", 5, "ObjectCreated:PutObject")


def cloudtrail(name: str, key: str = "input/s3_batch_sync_input-2026 11+30%.csv", **detail) -> dict:
    """An EventBridge "AWS API Call via CloudTrail" event, as AWS sends it."""
    return {"version": "0", "id": "e-1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3",
            "time": "2026-11-30T10:00:05Z", "region": "us-east-1", "detail": {
                "eventVersion": "1.09", "eventSource": "s3.amazonaws.com", "eventName": name,
                "eventTime": "2026-11-30T10:00:04Z", "eventID": f"id-{name}",
                "requestParameters": {"bucketName": "genomics-input", "key": key, "Host": "x"},
                "responseElements": {"x-amz-version-id": "v7"} if name != "UploadPart" else None,
                "additionalEventData": {"bytesTransferredIn": 1234}, **detail}}


def test_cloudtrail_calls_that_create_an_object_become_object_created_events():
    """The AWS Batch bulk-sync seed's rule: PutObject, CompleteMultipartUpload, CopyObject;
    the key is taken as CloudTrail wrote it (not URL-encoded, unlike S3's notifications)."""
    for name in ("PutObject", "CompleteMultipartUpload", "CopyObject"):
        [event] = translate(cloudtrail(name)).events
        assert (event.bucket, event.key, event.event_name, event.version_id, event.event_time) == (
            "genomics-input", "input/s3_batch_sync_input-2026 11+30%.csv", f"ObjectCreated:{name}", "v7",
            "2026-11-30T10:00:04Z")
        assert event.prefect_event()["event"] == "aws.s3.object.created"
    assert translate(cloudtrail("PutObject")).events[0].size == 1234
    # delivered twice (EventBridge retries): the same Prefect event id
    assert translate(cloudtrail("PutObject")).events[0].prefect_event()["id"] == \
        translate(cloudtrail("PutObject")).events[0].prefect_event()["id"]
    for name in ("UploadPart", "GetObject", "CreateMultipartUpload"):
        found = translate(cloudtrail(name))
        assert found.events == [] and "is not an object creation" in found.skipped[0], name
    refused = translate(cloudtrail("PutObject", errorCode="AccessDenied"))
    assert refused.events == [] and "AccessDenied" in refused.skipped[0]
    other = cloudtrail("PutObject")
    other["detail"]["eventSource"] = "ec2.amazonaws.com"
    assert translate(other).events == []


def test_test_events_other_events_and_malformed_records_are_skipped():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "global-builds"}
    assert translate(test_event).events == [] and "s3:TestEvent" in translate(test_event).skipped[0]
    found = translate({"Records": [s3_record("gone", "ObjectRemoved:Delete"), {"eventName": "ObjectCreated:Put"},
                                   s3_record("kept")]})
    assert [e.key for e in found.events] == ["kept"]
    assert len(found.skipped) == 2 and "malformed" in found.skipped[1]


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"hello": "world"}', b"\xff\xfe"])
def test_messages_of_no_known_shape_are_malformed(body):
    with pytest.raises(MalformedMessage):
        translate(body)


# --- SNS signatures, with a key and certificate of our own -------------------------------

@pytest.fixture(scope="module")
def signer():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"

    def sign(message: dict, version: str = "2") -> dict:
        message = {**message, "SignatureVersion": version, "SigningCertURL": url}
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = key.sign(string_to_sign(message), padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}

    return sign, {url: pem}


def notification(records: list[dict]) -> dict:
    return {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:builds",
            "Subject": "Amazon S3 Notification", "Message": json.dumps({"Records": records}),
            "Timestamp": "2026-11-23T10:00:00.000Z"}


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signatures_verify_and_tampering_does_not(signer, version):
    sign, certs = signer
    signed = sign(notification([s3_record("a")]), version)
    verify_sns(signed, certs.__getitem__)
    with pytest.raises(BadSignature):
        verify_sns({**signed, "Message": signed["Message"].replace('"a"', '"b"')}, certs.__getitem__)
    with pytest.raises(BadSignature, match="not an SNS one"):
        verify_sns({**signed, "SigningCertURL": "https://evil.example.com/cert.pem"}, certs.__getitem__)
    with pytest.raises(BadSignature, match="not an SNS one"):
        verify_sns({**signed, "SigningCertURL": signed["SigningCertURL"].replace("https", "http")},
                   certs.__getitem__)


# --- the bridges, posting to a stand-in Prefect API --------------------------------------

class FakePrefectApi:
    """POST /api/events: records the events, or answers 500 while `down` is set."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.down = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if api.down or self.path != "/api/events":
                    self.send_response(500)
                else:
                    api.events.extend(json.loads(body))
                    self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"


@pytest.fixture()
def api():
    fake = FakePrefectApi()
    yield fake
    fake.server.shutdown()


def test_http_bridge_accepts_secret_or_signature_and_rejects_the_rest(api, signer):
    sign, certs = signer
    bridge = HttpBridge(PrefectEvents(api.url), secret="s3cret", fetch=certs.__getitem__)
    body = json.dumps({"Records": [s3_record("build-1.zip")]}).encode()

    assert bridge.handle({}, body)[0] == 401  # no secret, not SNS
    assert bridge.handle({"X-S3flow-Secret": "wrong"}, body)[0] == 401
    tampered = {**sign(notification([s3_record("x")])), "Message": json.dumps({"Records": [s3_record("y")]})}
    assert bridge.handle({}, json.dumps(tampered).encode())[0] == 401
    assert bridge.handle({"X-S3flow-Secret": "s3cret"}, b"not json")[0] == 400
    assert api.events == []  # nothing emitted for a rejected request

    assert bridge.handle({"X-S3flow-Secret": "s3cret"}, body)[0] == 200
    assert bridge.handle({"Authorization": "Bearer s3cret"}, body)[0] == 200  # delivered twice: dropped
    assert bridge.handle({}, json.dumps(sign(notification([s3_record("signed+one.zip")]))).encode())[0] == 200
    assert [e["payload"]["key"] for e in api.events if e["event"] == "aws.s3.object.created"] == [
        "build-1.zip", "signed one.zip"]
    batches = [e for e in api.events if e["event"] == "s3flow.objects.created"]
    assert [[o["key"] for o in e["payload"]["objects"]] for e in batches] == [["build-1.zip"], ["signed one.zip"]]
    assert bridge.counts.duplicates == 1

    api.down = True  # Prefect API away: 503, so SNS or EventBridge deliver again
    other = json.dumps({"Records": [s3_record("build-2.zip")]}).encode()
    assert bridge.handle({"X-S3flow-Secret": "s3cret"}, other)[0] == 503
    api.down = False  # delivered again: now it goes
    assert bridge.handle({"X-S3flow-Secret": "s3cret"}, other)[0] == 200
    assert api.events[-2]["payload"]["key"] == "build-2.zip"


class FakeSqs:
    """The two SQS calls the bridge makes, on an in-memory queue: a message received is
    invisible until deleted, or until its visibility timeout passes (`time_out`)."""

    def __init__(self, bodies: list[str]) -> None:
        self.messages = [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": b} for i, b in enumerate(bodies)]
        self.invisible: set[str] = set()

    def receive_message(self, **kwargs) -> dict:
        visible = [m for m in self.messages if m["ReceiptHandle"] not in self.invisible]
        taken = visible[:kwargs["MaxNumberOfMessages"]]
        self.invisible.update(m["ReceiptHandle"] for m in taken)
        return {"Messages": taken}

    def delete_message_batch(self, QueueUrl, Entries) -> None:
        handles = {entry["ReceiptHandle"] for entry in Entries}
        self.messages = [m for m in self.messages if m["ReceiptHandle"] not in handles]

    def time_out(self) -> None:
        self.invisible.clear()


def test_sqs_bridge_deletes_only_what_was_delivered(api):
    good = json.dumps({"Records": [s3_record("a%20b")]})
    test_event = json.dumps({"Event": "s3:TestEvent", "Bucket": "global-builds"})
    queue = FakeSqs([good, "{{{ malformed", test_event])
    bridge = SqsBridge("http://queue", PrefectEvents(api.url), sqs_client=queue, wait_seconds=0)

    api.down = True
    assert bridge.poll_once() == 2  # the event and the test event (which carries none: deleted)
    assert bridge.batcher.flush()
    with pytest.raises(RuntimeError):  # the refusal backs the bridge off
        bridge.poll_once()
    assert [m["Body"] for m in queue.messages] == [good, "{{{ malformed"] and api.events == []

    api.down = False
    queue.time_out()  # SQS hands the message out again
    assert bridge.poll_once() == 1
    assert bridge.batcher.flush()
    assert [e["payload"]["key"] for e in api.events if e["event"] == "aws.s3.object.created"] == ["a b"]
    assert [m["Body"] for m in queue.messages] == ["{{{ malformed"]  # left for the dead-letter queue
    queue.time_out()
    assert bridge.poll_once() == 0 and len(api.events) == 2  # and never emitted (1 object, 1 batch event)


def test_a_burst_goes_out_in_batches_and_a_lone_object_within_a_second(api):
    """1,200 objects at once: batch events of 500, 500 and 200, each object once (ten
    messages delivered twice are dropped), every message deleted only once its batch
    was accepted; then a lone upload goes after the quiet time, not the whole window."""
    bodies = [json.dumps({"Records": [s3_record(f"drop/f{i}.bin")]}) for i in range(1200)]
    queue = FakeSqs(bodies + bodies[:10])
    bridge = SqsBridge("http://queue", PrefectEvents(api.url), sqs_client=queue, wait_seconds=0,
                       batcher=Batcher(PrefectEvents(api.url), window=30.0))
    while bridge.poll_once():  # the poller keeps receiving while batches are pending
        pass
    assert bridge.batcher.flush()
    batches = [e for e in api.events if e["event"] == "s3flow.objects.created"]
    assert [e["payload"]["count"] for e in batches] == [500, 500, 200]
    keys = [o["key"] for e in batches for o in e["payload"]["objects"]]
    assert sorted(keys) == sorted(f"drop/f{i}.bin" for i in range(1200))
    assert queue.messages == [] and bridge.counts.duplicates == 10

    started = time.monotonic()
    queue.messages = [{"MessageId": "lone", "ReceiptHandle": "lone", "Body": json.dumps(
        {"Records": [s3_record("drop/lone.bin")]})}]
    bridge.poll_once()
    while queue.messages and time.monotonic() - started < 10:
        time.sleep(0.05)
    assert queue.messages == [] and time.monotonic() - started < 5  # the quiet time, not the 30 s window
    assert api.events[-1]["payload"]["objects"][0]["key"] == "drop/lone.bin"
