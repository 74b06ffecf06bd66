"""S3 event notifications in, `aws.s3.object.created` Prefect events out. No Prefect here.

What arrives, and what we make of it:

| message                                              | result                                  |
|------------------------------------------------------|-----------------------------------------|
| S3 notification `{"Records": [...]}` (SQS, Lambda)   | one event per ObjectCreated:* record     |
| SNS envelope `{"Type": "Notification", "Message": ...}` | its Message, as above                 |
| EventBridge `{"detail-type": "Object Created", ...}` | one event                                |
| EventBridge "AWS API Call via CloudTrail", eventSource s3.amazonaws.com, eventName PutObject, CompleteMultipartUpload or CopyObject (no errorCode) | one event (the key is not URL-encoded there) |
| ... any other CloudTrail call (UploadPart, GetObject...), or a failed one | skipped, logged |
| `s3:TestEvent` (sent when notifications are set up)  | skipped, logged                          |
| other event names (ObjectRemoved:*, ...)             | skipped, logged                          |
| a record missing bucket or key                       | that record skipped, logged; the others go |
| not JSON, or none of the shapes above                | MalformedMessage                          |

S3 URL-encodes keys in notifications (`+` for a space, `%xx` for the rest):
events carry the decoded key, the one to copy. CloudTrail records the request's own
parameters, so its `requestParameters.key` is taken as it is.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit

EVENT_NAME = "aws.s3.object.created"
BATCH_EVENT_NAME = "s3flow.objects.created"  # many objects of one bucket: one replicate-objects run
BATCH_OBJECTS = 500  # objects per batch event at most (about 150 KB of payload)
_NAMESPACE = uuid.UUID("5b1c3f0e-6a55-4c57-9a43-2f2a4e1f7d11")  # s3flow's: event ids from S3's facts


class MalformedMessage(ValueError):
    """A message that is none of the shapes S3, SNS or EventBridge send."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str  # decoded
    size: int | None
    etag: str
    event_time: str  # ISO 8601, as S3 gave it
    event_name: str = "ObjectCreated:Put"
    version_id: str | None = None
    sequencer: str = ""

    @property
    def id(self) -> str:
        """Derived from the S3 event, so a message delivered twice has the same id."""
        identity = (
            f"s3://{self.bucket}/{self.key}#{self.version_id or ''}#{self.sequencer or self.etag}#{self.event_time}"
        )
        return str(uuid.uuid5(_NAMESPACE, identity))

    def prefect_event(self) -> dict:
        """The Prefect event, as POST /api/events takes it; a message delivered twice
        makes the same event (the same id) twice."""
        return {
            "id": self.id,
            "occurred": self.event_time,
            "event": EVENT_NAME,
            "resource": {
                "prefect.resource.id": f"aws.s3.bucket.{self.bucket}",
                "prefect.resource.name": self.bucket,
                "aws.s3.bucket": self.bucket,
                "aws.s3.key": self.key,
            },
            "payload": {
                "bucket": self.bucket,
                "key": self.key,
                "size": self.size,
                "etag": self.etag,
                "event_time": self.event_time,
                "event_name": self.event_name,
                "version_id": self.version_id,
            },
            "related": [],
        }


def batch_event(objects: list[ObjectCreated]) -> dict:
    """One `s3flow.objects.created` event for objects of one bucket created close
    together: the replicate-objects deployment's trigger (one run copies them all).
    Its id is derived from its objects' ids: the same batch sent twice is one event."""
    bucket = objects[0].bucket
    ids = sorted(obj.id for obj in objects)
    return {
        "id": str(uuid.uuid5(_NAMESPACE, "batch#" + "#".join(ids))),
        "occurred": min(obj.event_time for obj in objects),
        "event": BATCH_EVENT_NAME,
        "resource": {
            "prefect.resource.id": f"aws.s3.bucket.{bucket}",
            "prefect.resource.name": bucket,
            "aws.s3.bucket": bucket,
        },
        "payload": {
            "bucket": bucket,
            "count": len(objects),
            "objects": [
                {
                    "key": obj.key,
                    "version_id": obj.version_id,
                    "size": obj.size,
                    "etag": obj.etag,
                    "event_time": obj.event_time,
                    "event_id": obj.id,
                }
                for obj in objects
            ],
        },
        "related": [],
    }


@dataclass
class Translation:
    events: list[ObjectCreated] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why each skipped thing was skipped


def translate(message: str | bytes | dict) -> Translation:
    """The object-created events in one message (see the module's table)."""
    body = _json(message) if not isinstance(message, dict) else message
    if not isinstance(body, dict):
        raise MalformedMessage("the message is not a JSON object")
    out = Translation()
    if body.get("Type") == "Notification" and "Message" in body:  # SNS envelope
        return translate(body["Message"])
    if body.get("Event") == "s3:TestEvent":
        out.skipped.append(f"s3:TestEvent for bucket {body.get('Bucket', '?')}")
        return out
    if body.get("source") == "aws.s3" and "detail" in body:
        _eventbridge(body, out)
        return out
    records = body.get("Records")
    if not isinstance(records, list):
        raise MalformedMessage("no Records, SNS Message or EventBridge detail in the message")
    for number, record in enumerate(records, 1):
        try:
            _record(record, out)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            out.skipped.append(f"record {number}: malformed ({type(exc).__name__}: {exc})")
    return out


def _json(message: str | bytes):
    try:
        return json.loads(message)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"the message is not JSON: {exc}") from None


def _record(record: dict, out: Translation) -> None:
    name = record.get("eventName", "")
    if not name.startswith("ObjectCreated:"):
        out.skipped.append(f"event {name or '(no eventName)'} is not an object creation")
        return
    s3 = record["s3"]
    bucket, key = s3["bucket"]["name"], s3["object"]["key"]
    if not bucket or not key:
        raise ValueError("empty bucket or key")
    obj = s3["object"]
    out.events.append(
        ObjectCreated(
            bucket=bucket,
            key=unquote_plus(key),
            size=_size(obj.get("size")),
            etag=str(obj.get("eTag", "")).strip('"'),
            event_time=record["eventTime"],
            event_name=name,
            version_id=obj.get("versionId") or None,
            sequencer=obj.get("sequencer", ""),
        )
    )


# CloudTrail's S3 API calls that leave a new object (UploadPart, UploadPartCopy and
# CreateMultipartUpload do not: the object exists once CompleteMultipartUpload succeeds).
CLOUDTRAIL_CREATES = frozenset({"PutObject", "CompleteMultipartUpload", "CopyObject"})


def _cloudtrail(body: dict, out: Translation) -> None:
    """An EventBridge rule on "AWS API Call via CloudTrail" (the AWS Batch bulk-sync seed's
    trigger): the call's requestParameters name the bucket and the key, not encoded."""
    detail = body.get("detail")
    if not isinstance(detail, dict):
        out.skipped.append("CloudTrail event malformed (no detail)")
        return
    name = detail.get("eventName", "")
    if detail.get("eventSource") != "s3.amazonaws.com" or name not in CLOUDTRAIL_CREATES:
        out.skipped.append(f"CloudTrail {detail.get('eventSource', '?')} {name or '?'} is not an object creation")
        return
    if detail.get("errorCode"):
        out.skipped.append(f"CloudTrail {name} failed ({detail['errorCode']}): no object was created")
        return
    try:
        request = detail["requestParameters"]
        bucket, key = request["bucketName"], request["key"]
        if not bucket or not key:
            raise ValueError("empty bucket or key")
        response = detail.get("responseElements") or {}
        extra = detail.get("additionalEventData") or {}
        result = response.get("copyObjectResult") or {}
        etag = response.get("ETag") or response.get("eTag") or result.get("ETag") or result.get("eTag") or ""
        out.events.append(
            ObjectCreated(
                bucket=bucket,
                key=key,
                size=_size(extra.get("bytesTransferredIn")) if name == "PutObject" else None,
                etag=str(etag).strip('"'),
                event_time=detail.get("eventTime") or body["time"],
                event_name=f"ObjectCreated:{name}",
                version_id=response.get("x-amz-version-id") or None,
                sequencer=detail.get("eventID", ""),
            )
        )
    except (KeyError, TypeError, ValueError) as exc:
        out.skipped.append(f"CloudTrail event malformed ({type(exc).__name__}: {exc})")


def _eventbridge(body: dict, out: Translation) -> None:
    if body.get("detail-type") == "AWS API Call via CloudTrail":
        _cloudtrail(body, out)
        return
    if body.get("detail-type") != "Object Created":
        out.skipped.append(f"EventBridge {body.get('detail-type')!r} is not an object creation")
        return
    try:
        detail = body["detail"]
        bucket, obj = detail["bucket"]["name"], detail["object"]
        key = obj["key"]
        if not bucket or not key:
            raise ValueError("empty bucket or key")
        out.events.append(
            ObjectCreated(
                bucket=bucket,
                key=unquote_plus(key),
                size=_size(obj.get("size")),
                etag=str(obj.get("etag", "")).strip('"'),
                event_time=body["time"],
                event_name=f"ObjectCreated:{detail.get('reason', 'PutObject')}",
                version_id=obj.get("version-id") or None,
                sequencer=obj.get("sequencer", ""),
            )
        )
    except (KeyError, TypeError, ValueError) as exc:
        out.skipped.append(f"EventBridge event malformed ({type(exc).__name__}: {exc})")


def _size(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- SNS message signatures -------------------------------------------------------------
# https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
# Written with `cryptography` (already installed with Prefect): the Python packages made
# for this are unmaintained, and the check is short.

_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
AWS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


class BadSignature(ValueError):
    """An SNS message whose signature does not verify, or that cannot be checked."""


def string_to_sign(message: dict) -> bytes:
    kind = message.get("Type")
    if kind not in _SIGNED_FIELDS:
        raise BadSignature(f"unknown SNS message type {kind!r}")
    parts = []
    for name in _SIGNED_FIELDS[kind]:
        if name in message and message[name] is not None:
            parts.append(f"{name}\n{message[name]}\n")
        elif name != "Subject":
            raise BadSignature(f"the SNS message has no {name}")
    return "".join(parts).encode("utf-8")


def verify_sns(message: dict, fetch_certificate: Callable[[str], bytes], cert_host: re.Pattern = AWS_CERT_HOST) -> None:
    """Raise BadSignature unless the message is signed by SNS's certificate (from
    SigningCertURL, which must be https on an SNS host)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    url = message.get("SigningCertURL") or message.get("SigningCertUrl") or ""
    parts = urlsplit(url)
    if parts.scheme != "https" or not cert_host.match(parts.hostname or "") or not parts.path.endswith(".pem"):
        raise BadSignature(f"the signing certificate URL {url!r} is not an SNS one")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise BadSignature(f"unknown SignatureVersion {message.get('SignatureVersion')!r}")
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
        certificate = x509.load_pem_x509_certificate(fetch_certificate(url))
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):  # SNS signs with RSA
            raise BadSignature("the signing certificate's key is not an RSA key")
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
    except BadSignature:
        raise
    except (InvalidSignature, KeyError, ValueError, TypeError) as exc:
        raise BadSignature(f"the SNS signature does not verify ({type(exc).__name__})") from None
