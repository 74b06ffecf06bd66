"""The only module that calls the S3 API. Everything else asks it.

Each method is one S3 request (a listing yields page by page) and raises
S3Error with S3's own error code; retrying is the caller's business (retry.py),
so botocore's own retries are off and every attempt is counted by us.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import NoCredentialsError, PartialCredentialsError, ReadTimeoutError

from .config import Endpoint
from .errors import InputError, S3Error
from .record import ObjectRef

# Properties HeadObject reports that a multipart copy must set on the new upload
# itself (CopyObject carries them over with MetadataDirective=COPY).
COPIED_PROPERTIES = (
    "ContentType", "CacheControl", "ContentDisposition", "ContentEncoding",
    "ContentLanguage", "Expires", "Metadata", "WebsiteRedirectLocation",
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

    @property
    def needs_restore(self) -> bool:
        return self.storage_class in ARCHIVE_CLASSES and not self.restored


class Storage:
    """One S3 endpoint with one set of credentials (a side of a transfer)."""

    def __init__(self, endpoint: Endpoint = Endpoint(), max_connections: int = 64,
                 requester_pays: bool = False) -> None:
        self.endpoint = endpoint
        # Requests that read a requester-pays source must say who pays (harmless elsewhere).
        self._payer = {"RequestPayer": "requester"} if requester_pays else {}
        session = boto3.session.Session(
            aws_access_key_id=endpoint.access_key_id,
            aws_secret_access_key=endpoint.secret_access_key,
            aws_session_token=endpoint.session_token,
            region_name=endpoint.region, profile_name=endpoint.profile,
        )
        self._session = session
        self._client = session.client("s3", endpoint_url=endpoint.endpoint_url, config=Config(
            max_pool_connections=max_connections, retries={"total_max_attempts": 1},
            connect_timeout=10, read_timeout=900, tcp_keepalive=True,
        ))

    def check_credentials(self, side: str) -> None:
        """Fail early, with no request made, when boto3 finds no credentials at all."""
        if self._session.get_credentials() is None:
            raise InputError(
                f"no AWS credentials for the {side}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or name an AwsCredentials block")

    @property
    def endpoint_url(self) -> str:
        return self._client.meta.endpoint_url

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
                answer = self._client.head_object(Bucket=ref.bucket, Key=ref.key, **_version(ref),
                                                  **self._payer)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return None
            raise
        properties = {name: answer[name] for name in COPIED_PROPERTIES if name in answer}
        encryption = {name: answer[name] for name in ("ServerSideEncryption", "SSEKMSKeyId")
                      if name in answer}
        return ObjectInfo(ref, answer["ContentLength"], _etag(answer["ETag"]),
                          answer["LastModified"].timestamp(), properties,
                          storage_class=answer.get("StorageClass") or "STANDARD",
                          restored='ongoing-request="false"' in answer.get("Restore", ""),
                          encryption=encryption)

    def first_part_size(self, ref: ObjectRef) -> int | None:
        """The size of a multipart object's part 1 (HEAD ?partNumber=1); None if unknown."""
        try:
            with _translated(ref.bucket, ref.key):
                answer = self._client.head_object(Bucket=ref.bucket, Key=ref.key, PartNumber=1,
                                                  **_version(ref), **self._payer)
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
            body = self._client.get_object(Bucket=ref.bucket, Key=ref.key, Range=f"bytes={first}-{last}",
                                           **_version(ref), **pin, **self._payer)["Body"]
            for chunk in body.iter_chunks(1024 * 1024):
                digest.update(chunk)
        return digest.hexdigest()

    def delete(self, ref: ObjectRef) -> None:
        with _translated(ref.bucket, ref.key):
            self._client.delete_object(Bucket=ref.bucket, Key=ref.key)

    def list_page(self, bucket: str, prefix: str, token: str | None) -> tuple[list[ObjectInfo], str | None]:
        """One page of objects under a prefix, in key order, and the next page's token."""
        args = {"Bucket": bucket, "Prefix": prefix, **self._payer}
        if token:
            args["ContinuationToken"] = token
        with _translated(bucket, prefix):
            answer = self._client.list_objects_v2(**args)
        objects = [
            ObjectInfo(ObjectRef(bucket, item["Key"]), item["Size"], _etag(item.get("ETag", "")),
                       item["LastModified"].timestamp(),
                       storage_class=item.get("StorageClass") or "STANDARD")
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
            return self._client.get_object_tagging(
                Bucket=ref.bucket, Key=ref.key, **_version(ref), **self._payer)["TagSet"]

    def copy_object(self, source: ObjectInfo, destination: ObjectRef, properties: dict) -> str:
        """Server-side copy of a whole object (<= 5 GiB), pinned to the source's ETag.

        Content type, metadata and tags come along (the COPY directives are S3's default);
        `properties` (DESTINATION_PROPERTIES) are set on the new object.
        """
        with _translated(destination.bucket, destination.key):
            answer = self._client.copy_object(
                Bucket=destination.bucket, Key=destination.key,
                CopySource=_copy_source(source.ref), CopySourceIfMatch=f'"{source.etag}"',
                **_only(properties, DESTINATION_PROPERTIES), **self._payer,
            )
        return _written(answer["CopyObjectResult"])

    def create_multipart(self, source: ObjectInfo, destination: ObjectRef, tags: list[dict],
                         properties: dict) -> str:
        """Start a multipart upload carrying the source's properties and tags, and ours."""
        args = {**source.properties, **_only(properties, DESTINATION_PROPERTIES)}
        if tags:
            args["Tagging"] = urlencode([(tag["Key"], tag["Value"]) for tag in tags])
        with _translated(destination.bucket, destination.key):
            answer = self._client.create_multipart_upload(
                Bucket=destination.bucket, Key=destination.key, **args)
        return answer["UploadId"]

    def copy_part(self, source: ObjectInfo, destination: ObjectRef, upload_id: str,
                  number: int, first: int, last: int) -> "Written":
        with _translated(destination.bucket, destination.key):
            answer = self._client.upload_part_copy(
                Bucket=destination.bucket, Key=destination.key, UploadId=upload_id,
                PartNumber=number, CopySourceRange=f"bytes={first}-{last}",
                CopySource=_copy_source(source.ref), CopySourceIfMatch=f'"{source.etag}"',
                **self._payer,
            )
        return _written(answer["CopyPartResult"])

    def complete_multipart(self, destination: ObjectRef, upload_id: str, parts: list["Written"]) -> "Written":
        """Finish an upload from its parts' answers (the parts' checksums go along)."""
        listed = [{"ETag": f'"{part.etag}"', "PartNumber": number, **part.checksum_arg()}
                  for number, part in enumerate(parts, 1)]
        with _translated(destination.bucket, destination.key):
            answer = self._client.complete_multipart_upload(
                Bucket=destination.bucket, Key=destination.key, UploadId=upload_id,
                MultipartUpload={"Parts": listed})
        return _written(answer)

    def abort_multipart(self, destination: ObjectRef, upload_id: str) -> None:
        with _translated(destination.bucket, destination.key):
            self._client.abort_multipart_upload(
                Bucket=destination.bucket, Key=destination.key, UploadId=upload_id)

    def delete_objects(self, bucket: str, keys: list[str]) -> dict[str, str]:
        """Delete up to 1,000 keys in one request; the keys that failed, with their codes."""
        with _translated(bucket, ""):
            answer = self._client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})
        return {error["Key"]: error.get("Code", "InternalError") for error in answer.get("Errors", ())}


def _etag(value: str) -> str:
    return value.strip('"')


@dataclass(frozen=True)
class Written:
    """What S3 answered for an object or part it wrote: its ETag, and the checksum
    it computed as "ALGORITHM:value" ("" where the store computed none)."""

    etag: str
    checksum: str = ""

    def checksum_arg(self) -> dict:
        algorithm, _, value = self.checksum.partition(":")
        return {f"Checksum{algorithm}": value} if value else {}


def _written(answer: dict) -> Written:
    for name, value in answer.items():
        if name.startswith("Checksum") and name != "ChecksumType" and isinstance(value, str):
            return Written(_etag(answer["ETag"]), f"{name.removeprefix('Checksum')}:{value}")
    return Written(_etag(answer["ETag"]))


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

    def __exit__(self, kind, exc, traceback) -> bool:
        if exc is None:
            return False
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "Unknown"))
            code = _HEAD_CODES.get(code, code)
            raise S3Error(code, error.get("Message", ""), self.bucket, self.key) from None
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            raise InputError(
                "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE), or name an AwsCredentials block") from None
        if isinstance(exc, _TIMEOUT_ERRORS):
            raise S3Error("Timeout", str(exc), self.bucket, self.key) from None
        if isinstance(exc, _NETWORK_ERRORS):
            raise S3Error("ConnectionError", str(exc), self.bucket, self.key) from None
        return False
