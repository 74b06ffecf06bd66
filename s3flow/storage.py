"""The only module that calls the S3 API. Everything else asks it.

Each method is one S3 request (a listing yields page by page) and raises
S3Error with S3's own error code; retrying is the caller's business (retry.py),
so botocore's own retries are off and every attempt is counted by us.

Small-object copies have a second way out, `Storage.copy_lane`: CopyObject sent
over awscrt's C HTTP client and signer, asynchronously. botocore spends about
1.8 ms of CPU on each request (building, signing, parsing in Python); the lane
spends about 0.15 ms, which on a small machine decides how many objects a
second a transfer copies. It does one thing (CopyObject, one try) and
answers with a Future; anything it cannot do is the caller's to do again
through botocore (see copy.Copier.run).
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import boto3
from awscrt import auth as crt_auth
from awscrt import http as crt_http
from awscrt import io as crt_io
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .config import Endpoint
from .errors import InputError, S3Error
from .record import ObjectRef

# Properties HeadObject reports that a multipart copy must set on the new upload
# itself (CopyObject carries them over with MetadataDirective=COPY).
COPIED_PROPERTIES = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "Metadata",
    "WebsiteRedirectLocation",
)
# Properties a transfer may set on the destination (CopyObject, CreateMultipartUpload).
DESTINATION_PROPERTIES = ("StorageClass", "ServerSideEncryption", "SSEKMSKeyId", "ACL", "ChecksumAlgorithm")
# HEAD answers carry no body, so S3 error codes arrive as HTTP statuses.
_HEAD_CODES = {"404": "NoSuchKey", "403": "AccessDenied", "400": "BadRequest"}
# botocore's classes: connection refused/reset, TLS and proxy failures, and broken
# HTTP exchanges all count as a connection fault; timeouts are their own code.
_TIMEOUT_ERRORS = (ReadTimeoutError, ConnectTimeoutError)
_NETWORK_ERRORS = (BotoConnectionError, HTTPClientError)
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
log = logging.getLogger("s3flow.storage")


def is_full_object(checksum: str, checksum_type: str = "") -> bool:
    """A checksum of the whole object: S3 says FULL_OBJECT, or says nothing and the value
    has no "-N" part count (a single-part object's checksum is of all its bytes)."""
    if not checksum:
        return False
    if checksum_type:
        return checksum_type == "FULL_OBJECT"
    return "-" not in checksum.partition(":")[2]


def checksum_of(answer: dict) -> str:
    """The "ALGORITHM:base64" checksum in an S3 answer, or ""."""
    for name in CHECKSUM_FIELDS:
        if answer.get(name):
            return f"{name.removeprefix('Checksum')}:{answer[name]}"
    return ""


CHECKSUM_FIELDS = ("ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32", "ChecksumSHA256", "ChecksumSHA1")
# Algorithms S3 can keep as a full-object checksum of a multipart upload.
FULL_OBJECT_ALGORITHMS = frozenset({"CRC64NVME", "CRC32", "CRC32C"})

# Storage classes whose objects must be restored (RestoreObject) before a copy.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


@dataclass(frozen=True)
class ObjectInfo:
    ref: ObjectRef
    size: int
    etag: str  # without quotes
    last_modified: float  # epoch seconds
    properties: dict = field(default_factory=dict, compare=False, repr=False)
    storage_class: str = "STANDARD"
    restored: bool = False  # an archived object with a finished restore (HEAD only)
    encryption: dict = field(default_factory=dict, compare=False, repr=False)
    checksum: str = ""  # "ALGORITHM:base64" S3 keeps for the object (HEAD only; "" unknown or none)
    checksum_type: str = ""  # FULL_OBJECT or COMPOSITE, as S3 says (HEAD only)

    @property
    def full_checksum(self) -> str:
        """The object's full-object checksum ("ALGORITHM:base64"), or "": one of the whole
        bytes, whatever the part layout, so two of them prove a copy with no byte read."""
        return self.checksum if is_full_object(self.checksum, self.checksum_type) else ""

    @property
    def etag_is_md5(self) -> bool:
        """The ETag is the MD5 of the bytes: one part, and not encrypted with KMS."""
        return "-" not in self.etag and self.encryption.get("ServerSideEncryption", "AES256") == "AES256"

    @property
    def needs_restore(self) -> bool:
        return self.storage_class in ARCHIVE_CLASSES and not self.restored


def _check_endpoint_url(url: str | None) -> None:
    """An endpoint URL must say http:// or https:// and name a host (botocore's own error
    is a traceback, and `localhost:9000` parses as a URL with the scheme "localhost")."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"the S3 endpoint URL {url!r} needs a scheme and a host, e.g. http://{url.split('://')[-1]} "
            "(AWS_ENDPOINT_URL or the credentials block's endpoint)"
        )


@dataclass(frozen=True)
class OpenUpload:
    """A multipart upload started and neither completed nor aborted."""

    ref: ObjectRef
    upload_id: str
    initiated: float | None  # epoch seconds


class Storage:
    """One S3 endpoint with one set of credentials (a side of a transfer)."""

    def __init__(
        self,
        endpoint: Endpoint = Endpoint(),
        max_connections: int = 64,
        requester_pays: bool = False,
        copy_lane: bool | None = None,
    ) -> None:
        """copy_lane: send small CopyObjects through awscrt (None: unless the
        environment says S3FLOW_COPY_LANE=off or routes traffic through a proxy)."""
        self.endpoint = endpoint
        # Requests that read a requester-pays source must say who pays (harmless elsewhere).
        self._payer = {"RequestPayer": "requester"} if requester_pays else {}
        _check_endpoint_url(
            endpoint.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=endpoint.access_key_id,
                aws_secret_access_key=endpoint.secret_access_key,
                aws_session_token=endpoint.session_token,
                region_name=endpoint.region,
                profile_name=endpoint.profile,
            )
            self._session = session
            self._client = session.client(
                "s3",
                endpoint_url=endpoint.endpoint_url,
                config=Config(
                    max_pool_connections=max_connections,
                    retries={"total_max_attempts": 1},
                    connect_timeout=10,
                    read_timeout=900,
                    tcp_keepalive=True,
                ),
            )
        except ProfileNotFound as exc:
            where = "the credentials block's profile" if endpoint.profile else "AWS_PROFILE"
            raise InputError(
                f"the AWS profile {exc.kwargs.get('profile')!r} ({where}) is not in "
                "~/.aws/config or ~/.aws/credentials: `aws configure list-profiles` "
                "lists those there"
            ) from None
        except ValueError as exc:  # botocore: "Invalid endpoint: ..."
            raise InputError(
                f"the S3 endpoint is not valid ({exc}): give a URL such as "
                "https://s3.example.com:9000 in AWS_ENDPOINT_URL or the credentials block"
            ) from None
        if copy_lane is None:
            copy_lane = os.environ.get("S3FLOW_COPY_LANE", "on").lower() not in ("off", "0", "false", "no") and not any(
                os.environ.get(name) for name in _PROXY_VARIABLES
            )
        self._lane_wanted = copy_lane
        self._lane: CopyLane | None = None
        self._lane_lock = threading.Lock()

    @property
    def copy_lane(self) -> CopyLane | None:
        """The awscrt lane for CopyObject, made on first use; None when it is off,
        when there are no credentials to sign with, or when it has given up."""
        if not self._lane_wanted:
            return None
        with self._lane_lock:
            if self._lane is None:
                credentials = self._session.get_credentials()
                if credentials is None:
                    self._lane_wanted = False
                    return None
                self._lane = CopyLane(
                    self.endpoint_url, self._client.meta.region_name or "us-east-1", credentials, self._payer
                )
        return None if self._lane.disabled else self._lane

    def check_credentials(self, side: str) -> None:
        """Fail early, with no request made, when boto3 finds no credentials at all."""
        if self._session.get_credentials() is None:
            raise InputError(
                f"no AWS credentials for the {side}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or name an AwsCredentials block"
            )

    @property
    def endpoint_url(self) -> str:
        return self._client.meta.endpoint_url

    @property
    def is_aws(self) -> bool:
        """Amazon S3 itself, not another S3-compatible store."""
        host = urlsplit(self.endpoint_url).hostname or ""
        return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))

    def bucket_error(self, bucket: str) -> str | None:
        """None when the bucket is there, else why not (NoSuchBucket, AccessDenied...)."""
        try:
            with _translated(bucket, ""):
                self._client.head_bucket(Bucket=bucket)
        except S3Error as exc:
            if exc.transient:
                raise
            return "NoSuchBucket" if exc.code == "NoSuchKey" else exc.code
        return None

    def credentials_error(self, bucket: str) -> str | None:
        """The code S3 gives these credentials for a one-key listing, if it refuses them
        (HEAD answers carry no error code, so a refused HeadBucket asks again here)."""
        try:
            with _translated(bucket, ""):
                self._client.list_objects_v2(Bucket=bucket, MaxKeys=1, **self._payer)
        except S3Error as exc:
            if exc.transient:
                raise
            return exc.code
        return None

    def head(self, ref: ObjectRef) -> ObjectInfo | None:
        """The object's size, ETag and properties; None if it does not exist."""
        try:
            with _translated(ref.bucket, ref.key):
                answer = self._client.head_object(
                    Bucket=ref.bucket, Key=ref.key, ChecksumMode="ENABLED", **_version(ref), **self._payer
                )
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise
        properties = {name: answer[name] for name in COPIED_PROPERTIES if name in answer}
        encryption = {name: answer[name] for name in ("ServerSideEncryption", "SSEKMSKeyId") if name in answer}
        return ObjectInfo(
            ref,
            answer["ContentLength"],
            _etag(answer["ETag"]),
            answer["LastModified"].timestamp(),
            properties,
            storage_class=answer.get("StorageClass") or "STANDARD",
            restored='ongoing-request="false"' in answer.get("Restore", ""),
            encryption=encryption,
            checksum=checksum_of(answer),
            checksum_type=answer.get("ChecksumType") or "",
        )

    def first_part_size(self, ref: ObjectRef) -> int | None:
        """The size of a multipart object's part 1 (HEAD ?partNumber=1); None if unknown."""
        try:
            with _translated(ref.bucket, ref.key):
                answer = self._client.head_object(
                    Bucket=ref.bucket, Key=ref.key, PartNumber=1, **_version(ref), **self._payer
                )
        except S3Error as exc:
            if exc.transient:
                raise
            return None
        return answer.get("ContentLength") if answer.get("PartsCount") else None

    def range_md5(self, ref: ObjectRef, first: int, last: int, etag: str | None = None) -> str:
        """MD5 of bytes first..last of an object, streamed (never held whole); with
        `etag`, only of that version of it (PreconditionFailed otherwise)."""
        digest = hashlib.md5()
        pin = {"IfMatch": f'"{etag}"'} if etag else {}
        with _translated(ref.bucket, ref.key):
            body = self._client.get_object(
                Bucket=ref.bucket, Key=ref.key, Range=f"bytes={first}-{last}", **_version(ref), **pin, **self._payer
            )["Body"]
            for chunk in body.iter_chunks(1024 * 1024):
                digest.update(chunk)
        return digest.hexdigest()

    def digests(self, ref: ObjectRef, names: tuple[str, ...], etag: str | None = None) -> dict[str, str]:
        """Hex digests (hashlib names: md5, sha256) of a whole object's bytes, streamed in
        one read; with `etag`, only of that version of it (PreconditionFailed otherwise)."""
        hashes = {name: hashlib.new(name) for name in names}
        pin = {"IfMatch": f'"{etag}"'} if etag else {}
        with _translated(ref.bucket, ref.key):
            body = self._client.get_object(Bucket=ref.bucket, Key=ref.key, **_version(ref), **pin, **self._payer)[
                "Body"
            ]
            for chunk in body.iter_chunks(1024 * 1024):
                for digest in hashes.values():
                    digest.update(chunk)
        return {name: digest.hexdigest() for name, digest in hashes.items()}

    def delete(self, ref: ObjectRef) -> None:
        with _translated(ref.bucket, ref.key):
            self._client.delete_object(Bucket=ref.bucket, Key=ref.key)

    def list_page(
        self, bucket: str, prefix: str, token: str | None, start_after: str | None = None, max_keys: int = 1000
    ) -> tuple[list[ObjectInfo], str | None]:
        """One page of objects under a prefix (after `start_after`), in key order, and the
        next page's token."""
        args = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys, **self._payer}
        if token:
            args["ContinuationToken"] = token
        elif start_after:
            args["StartAfter"] = start_after
        with _translated(bucket, prefix):
            answer = self._client.list_objects_v2(**args)
        objects = [
            ObjectInfo(
                ObjectRef(bucket, item["Key"]),
                item["Size"],
                _etag(item.get("ETag", "")),
                item["LastModified"].timestamp(),
                storage_class=item.get("StorageClass") or "STANDARD",
            )
            for item in answer.get("Contents", ())
        ]
        return objects, answer.get("NextContinuationToken") if answer.get("IsTruncated") else None

    def get_bytes(self, ref: ObjectRef) -> bytes:
        with _translated(ref.bucket, ref.key):
            return self._client.get_object(Bucket=ref.bucket, Key=ref.key, **self._payer)["Body"].read()

    def put_bytes(self, ref: ObjectRef, data: bytes, **properties) -> None:
        with _translated(ref.bucket, ref.key):
            self._client.put_object(Bucket=ref.bucket, Key=ref.key, Body=data, **properties)

    def tags(self, ref: ObjectRef) -> list[dict]:
        with _translated(ref.bucket, ref.key):
            return self._client.get_object_tagging(Bucket=ref.bucket, Key=ref.key, **_version(ref), **self._payer)[
                "TagSet"
            ]

    def copy_object(self, source: ObjectInfo, destination: ObjectRef, properties: dict) -> Written:
        """Server-side copy of a whole object (<= 5 GiB), pinned to the source's ETag.

        Content type, metadata and tags come along (the COPY directives are S3's default);
        `properties` (DESTINATION_PROPERTIES) are set on the new object.
        """
        with _translated(destination.bucket, destination.key):
            answer = self._client.copy_object(
                Bucket=destination.bucket,
                Key=destination.key,
                CopySource=_copy_source(source.ref),
                CopySourceIfMatch=f'"{source.etag}"',
                **_only(properties, DESTINATION_PROPERTIES),
                **self._payer,
            )
        return _written(answer["CopyObjectResult"])

    def create_multipart(self, source: ObjectInfo, destination: ObjectRef, tags: list[dict], properties: dict) -> str:
        """Start a multipart upload carrying the source's properties and tags, and ours."""
        args = {**source.properties, **_only(properties, (*DESTINATION_PROPERTIES, "ChecksumType"))}
        if tags:
            args["Tagging"] = urlencode([(tag["Key"], tag["Value"]) for tag in tags])
        with _translated(destination.bucket, destination.key):
            answer = self._client.create_multipart_upload(Bucket=destination.bucket, Key=destination.key, **args)
        return answer["UploadId"]

    def copy_part(
        self, source: ObjectInfo, destination: ObjectRef, upload_id: str, number: int, first: int, last: int
    ) -> Written:
        with _translated(destination.bucket, destination.key):
            answer = self._client.upload_part_copy(
                Bucket=destination.bucket,
                Key=destination.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySourceRange=f"bytes={first}-{last}",
                CopySource=_copy_source(source.ref),
                CopySourceIfMatch=f'"{source.etag}"',
                **self._payer,
            )
        return _written(answer["CopyPartResult"])

    def complete_multipart(self, destination: ObjectRef, upload_id: str, parts: list[Written]) -> Written:
        """Finish an upload from its parts' answers (the parts' checksums go along)."""
        listed = [
            {"ETag": f'"{part.etag}"', "PartNumber": number, **part.checksum_arg()}
            for number, part in enumerate(parts, 1)
        ]
        with _translated(destination.bucket, destination.key):
            answer = self._client.complete_multipart_upload(
                Bucket=destination.bucket, Key=destination.key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        return _written(answer)

    def abort_multipart(self, destination: ObjectRef, upload_id: str) -> None:
        with _translated(destination.bucket, destination.key):
            self._client.abort_multipart_upload(Bucket=destination.bucket, Key=destination.key, UploadId=upload_id)

    def upload_page(
        self, bucket: str, prefix: str, marker: tuple[str, str] | None
    ) -> tuple[list[OpenUpload], tuple[str, str] | None]:
        """One page of incomplete multipart uploads under a prefix, and the next page's
        (key, upload id) marker."""
        args = {"Bucket": bucket, "Prefix": prefix}
        if marker:
            args["KeyMarker"], args["UploadIdMarker"] = marker
        with _translated(bucket, prefix):
            answer = self._client.list_multipart_uploads(**args)
        uploads = [
            OpenUpload(
                ObjectRef(bucket, item["Key"]),
                item["UploadId"],
                item["Initiated"].timestamp() if item.get("Initiated") else None,
            )
            for item in answer.get("Uploads", ())
        ]
        more = answer.get("IsTruncated") and (answer.get("NextKeyMarker"), answer.get("NextUploadIdMarker"))
        return uploads, more or None

    def upload_bytes(self, upload: OpenUpload) -> int:
        """The bytes an incomplete upload's parts hold (billed until it is aborted)."""
        total, marker = 0, None
        while True:
            args = {"Bucket": upload.ref.bucket, "Key": upload.ref.key, "UploadId": upload.upload_id}
            if marker:
                args["PartNumberMarker"] = marker
            with _translated(upload.ref.bucket, upload.ref.key):
                answer = self._client.list_parts(**args)
            total += sum(part.get("Size", 0) for part in answer.get("Parts", ()))
            if not answer.get("IsTruncated"):
                return total
            marker = answer.get("NextPartNumberMarker")

    def delete_objects(self, bucket: str, keys: list[str]) -> dict[str, str]:
        """Delete up to 1,000 keys in one request; the keys that failed, with their codes."""
        with _translated(bucket, ""):
            answer = self._client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        return {error["Key"]: error.get("Code", "InternalError") for error in answer.get("Errors", ())}


def _etag(value: str) -> str:
    return value.strip('"')


@dataclass(frozen=True)
class Written:
    """What S3 answered for an object or part it wrote: its ETag, and the checksum
    it computed as "ALGORITHM:value" ("" where the store computed none)."""

    etag: str
    checksum: str = ""
    checksum_type: str = ""  # FULL_OBJECT or COMPOSITE, where S3 said

    @property
    def full_checksum(self) -> str:
        return self.checksum if is_full_object(self.checksum, self.checksum_type) else ""

    def checksum_arg(self) -> dict:
        algorithm, _, value = self.checksum.partition(":")
        return {f"Checksum{algorithm}": value} if value else {}


def _written(answer: dict) -> Written:
    return Written(_etag(answer["ETag"]), checksum_of(answer), answer.get("ChecksumType") or "")


def _only(args: dict, allowed: tuple[str, ...]) -> dict:
    return {name: value for name, value in args.items() if name in allowed and value is not None}


def _version(ref: ObjectRef) -> dict:
    return {"VersionId": ref.version_id} if ref.version_id else {}


def _copy_source(ref: ObjectRef) -> dict:
    return {"Bucket": ref.bucket, "Key": ref.key, **_version(ref)}


class _translated:
    """Turn botocore's exceptions into S3Error (by code) or InputError (credentials)."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket, self.key = bucket, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> None:
        if exc is None:
            return None
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "Unknown"))
            code = _HEAD_CODES.get(code, code)
            raise S3Error(code, error.get("Message", ""), self.bucket, self.key) from None
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            raise InputError(
                "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE), or name an AwsCredentials block"
            ) from None
        if isinstance(exc, _TIMEOUT_ERRORS):
            raise S3Error("Timeout", str(exc), self.bucket, self.key) from None
        if isinstance(exc, _NETWORK_ERRORS):
            raise S3Error("ConnectionError", str(exc), self.bucket, self.key) from None
        return None


# --- the awscrt lane ---------------------------------------------------------------

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
# Request headers for DESTINATION_PROPERTIES (and the requester-pays flag).
_HEADERS = {
    "StorageClass": "x-amz-storage-class",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "ACL": "x-amz-acl",
    "ChecksumAlgorithm": "x-amz-checksum-algorithm",
    "RequestPayer": "x-amz-request-payer",
}
_ANSWER_FIELDS = re.compile(rb"<(ETag|Checksum(?:CRC32C|CRC32|CRC64NVME|SHA1|SHA256)|Code|Message)>(.*?)</\1>", re.S)
_VIRTUAL_HOSTABLE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_SAFE = "-._~/"  # what botocore leaves unquoted in a key
LANE_AGENT = f"s3flow-copy-lane awscrt/{version('awscrt')}"  # in S3's access logs, our requests


class CopyLane:
    """CopyObject through awscrt: one try per call, a Future of Written or S3Error.

    | part        | how                                                                |
    |-------------|--------------------------------------------------------------------|
    | connections | kept open and reused; one per request in flight (the caller bounds |
    |             | those: copy.AdaptiveSlots), made on demand, dropped when closed    |
    | addressing  | virtual-hosted on AWS (path style for buckets with dots), path     |
    |             | style on any other endpoint                                        |
    | signing     | SigV4 by awscrt with botocore's credentials (refreshed as botocore |
    |             | refreshes them), unsigned payload (the body is empty)              |
    | timeouts    | a watchdog closes the connection of a request older than `timeout` |
    | giving up   | after `give_up` failures in a row the lane turns itself off and    |
    |             | every copy goes through botocore, which has redirects, proxies...  |
    """

    _bootstrap: crt_io.ClientBootstrap | None = None
    _bootstrap_lock = threading.Lock()

    def __init__(
        self, endpoint_url: str, region: str, credentials, payer: dict, timeout: float = 120.0, give_up: int = 32
    ) -> None:
        parts = urlsplit(endpoint_url)
        self._tls = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port or (443 if self._tls else 80)
        self._aws = self._host.endswith(".amazonaws.com")
        self._region, self._payer = region, {"RequestPayer": "requester"} if payer else {}
        self._timeout, self._give_up = timeout, give_up
        self._failures = 0
        self.disabled = False
        self._idle: dict[str, list] = {}
        self._in_flight: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None

        if hasattr(credentials, "refresh_needed"):  # botocore refreshes these: ask it each time

            def current() -> crt_auth.AwsCredentials:
                frozen = credentials.get_frozen_credentials()
                return crt_auth.AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

            provider = crt_auth.AwsCredentialsProvider.new_delegate(current)
        else:
            frozen = credentials.get_frozen_credentials()
            provider = crt_auth.AwsCredentialsProvider.new_static(frozen.access_key, frozen.secret_key, frozen.token)
        self._signing = crt_auth.AwsSigningConfig(
            credentials_provider=provider,
            region=region,
            service="s3",
            use_double_uri_encode=False,
            should_normalize_uri_path=False,
            signed_body_value=crt_auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
            signed_body_header_type=crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        )
        self._tls_context = None
        if self._tls:
            options = crt_io.TlsContextOptions()
            bundle = os.environ.get("AWS_CA_BUNDLE")
            if bundle:
                options.override_default_trust_store_from_path(None, bundle)
            self._tls_context = crt_io.ClientTlsContext(options)
        self._socket = crt_io.SocketOptions()
        self._socket.connect_timeout_ms = 10_000
        self._socket.keep_alive = True

    @classmethod
    def _loop(cls) -> crt_io.ClientBootstrap:
        with cls._bootstrap_lock:  # one event-loop thread per process does all lanes' I/O
            if cls._bootstrap is None:
                group = crt_io.EventLoopGroup(1)
                cls._bootstrap = crt_io.ClientBootstrap(group, crt_io.DefaultHostResolver(group))
            return cls._bootstrap

    def copy_object(self, source: ObjectInfo, destination: ObjectRef, properties: dict) -> Future:
        """Start CopyObject of `source` (pinned to its ETag) to `destination`; the
        Future ends with S3's Written answer, or S3Error (S3's code, ConnectionError, Timeout)."""
        answer: Future = Future()
        try:
            host, path = self._address(destination)
            headers = [
                ("host", host if self._port in (80, 443) else f"{host}:{self._port}"),
                ("content-length", "0"),
                ("user-agent", LANE_AGENT),
                ("x-amz-copy-source", _copy_source_header(source.ref)),
                ("x-amz-copy-source-if-match", f'"{source.etag}"'),
            ]
            headers += [
                (_HEADERS[name], str(value))
                for name, value in {**_only(properties, DESTINATION_PROPERTIES), **self._payer}.items()
            ]
            request = crt_http.HttpRequest("PUT", path, crt_http.HttpHeaders(headers))
            crt_auth.aws_sign_request(request, self._signing).add_done_callback(
                lambda signed: self._signed(signed, request, host, destination, answer)
            )
        except Exception as exc:  # the caller falls back to botocore
            self._fail(answer, S3Error("ConnectionError", f"copy lane: {exc}", destination.bucket, destination.key))
        return answer

    def _address(self, destination: ObjectRef) -> tuple[str, str]:
        key = quote(destination.key, safe=_SAFE)
        if self._aws and _VIRTUAL_HOSTABLE.match(destination.bucket):
            return f"{destination.bucket}.{self._host}", f"/{key}"
        return self._host, f"/{quote(destination.bucket, safe='')}/{key}"

    def _signed(self, signed: Future, request, host: str, destination: ObjectRef, answer: Future) -> None:
        error = signed.exception()
        if error is not None:
            return self._fail(
                answer,
                S3Error("ConnectionError", f"copy lane: signing failed: {error}", destination.bucket, destination.key),
            )
        connection = self._take(host)
        if connection is not None:
            return self._send(connection, request, host, destination, answer)
        made = crt_http.HttpClientConnection.new(
            host_name=host,
            port=self._port,
            bootstrap=self._loop(),
            socket_options=self._socket,
            tls_connection_options=self._tls_options(host),
        )
        made.add_done_callback(lambda made: self._connected(made, request, host, destination, answer))

    def _tls_options(self, host: str):
        if self._tls_context is None:
            return None
        options = self._tls_context.new_connection_options()
        options.set_server_name(host)
        return options

    def _connected(self, made: Future, request, host: str, destination: ObjectRef, answer: Future) -> None:
        error = made.exception()
        if error is not None:
            return self._fail(
                answer,
                S3Error(
                    "ConnectionError",
                    f"copy lane: cannot connect to {host}:{self._port}: {error}",
                    destination.bucket,
                    destination.key,
                ),
            )
        self._send(made.result(), request, host, destination, answer)

    def _send(self, connection, request, host: str, destination: ObjectRef, answer: Future) -> None:
        body = bytearray()
        try:
            stream = connection.request(request, on_body=lambda chunk, **_: body.extend(chunk))
        except Exception as exc:  # a connection closed under us
            connection.close()
            return self._fail(
                answer, S3Error("ConnectionError", f"copy lane: {exc}", destination.bucket, destination.key)
            )
        with self._lock:
            self._in_flight[id(stream)] = (time.monotonic() + self._timeout, connection)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="s3flow-lane-watchdog", daemon=True)
                self._watchdog.start()

        def done(finished: Future) -> None:
            with self._lock:
                timed_out = self._in_flight.pop(id(stream), None) is None
            error = finished.exception()
            if error is not None or timed_out:
                connection.close()
                code = "Timeout" if timed_out else "ConnectionError"
                return self._fail(
                    answer,
                    S3Error(code, f"copy lane: {error or 'no answer in time'}", destination.bucket, destination.key),
                )
            self._give(host, connection)
            self._answered(stream.response_status_code, bytes(body), destination, answer)

        stream.completion_future.add_done_callback(done)
        stream.activate()

    def _answered(self, status: int, body: bytes, destination: ObjectRef, answer: Future) -> None:
        fields = {
            name.decode(): html.unescape(value.decode("utf-8", "replace"))
            for name, value in _ANSWER_FIELDS.findall(body)
        }
        if status == 200 and "ETag" in fields and "Code" not in fields:  # a 200 can carry an error
            checksum = next(
                (
                    f"{name.removeprefix('Checksum')}:{value}"
                    for name, value in fields.items()
                    if name.startswith("Checksum")
                ),
                "",
            )
            with self._lock:
                self._failures = 0
            return answer.set_result(Written(_etag(fields["ETag"]), checksum))
        code = _HEAD_CODES.get(str(status), str(status)) if "Code" not in fields else fields["Code"]
        self._fail(answer, S3Error(code, fields.get("Message", ""), destination.bucket, destination.key))

    def _fail(self, answer: Future, error: S3Error) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self._give_up and not self.disabled:
                self.disabled = True
                log.warning(
                    "copy lane off after %d failures in a row (last: %s): copies go through botocore",
                    self._failures,
                    error.code,
                )
        answer.set_exception(error)

    def _take(self, host: str):
        with self._lock:
            idle = self._idle.get(host, [])
            while idle:
                connection = idle.pop()
                if connection.is_open():
                    return connection
        return None

    def _give(self, host: str, connection) -> None:
        if connection.is_open():
            with self._lock:
                self._idle.setdefault(host, []).append(connection)

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._lock:
                late = [key for key, (deadline, _) in self._in_flight.items() if deadline < now]
                connections = [self._in_flight.pop(key)[1] for key in late]
            for connection in connections:  # its stream then completes with an error
                connection.close()


def _copy_source_header(ref: ObjectRef) -> str:
    """x-amz-copy-source as botocore writes it: bucket/key quoted, then the version."""
    value = quote(f"{ref.bucket}/{ref.key}", safe=_SAFE)
    return f"{value}?versionId={quote(ref.version_id)}" if ref.version_id else value
