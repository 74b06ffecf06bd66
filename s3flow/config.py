"""The one configuration object of a transfer: built at the edge, passed down, frozen."""

from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1024 * 1024
GiB = 1024 * MiB

# S3's own limits on multipart uploads.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_SINGLE_COPY = 5 * GiB

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
        "OUTPOSTS",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)
SSE_MODES = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
CHECKSUM_ALGORITHMS = frozenset({"CRC32C", "CRC32", "CRC64NVME", "SHA1", "SHA256"})
CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }
)


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom one side of a transfer talks to S3.

    Everything None means boto3's standard chain: AWS_* environment variables,
    AWS_ENDPOINT_URL, profiles, instance roles. Secrets never appear in repr.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)


PART_COPIES = ("auto", "always")


@dataclass(frozen=True)
class TransferConfig:
    multipart_threshold: int = 256 * MiB  # larger objects are copied in parts
    part_size: int = 64 * MiB
    max_concurrency: int = 64  # S3 requests in flight for one transfer
    part_concurrency: int = 8  # parts of one object copied at once
    max_attempts: int = 5  # tries per S3 request, transient errors only
    backoff_base: float = 0.2  # seconds; full jitter, doubling per try
    backoff_cap: float = 20.0
    delete: bool = False  # sync rows: remove destination objects the source lacks
    dry_run: bool = False  # decide and report everything, change nothing
    verifying: bool = False  # `s3flow verify`: a dry run that reads bytes to prove expected checksums
    filters: tuple[tuple[str, str], ...] = ()  # prefix rows: (include|exclude, glob), in order
    # Destination properties; None keeps the source's where S3 allows (see destination_args).
    storage_class: str | None = None
    sse: str | None = None  # AES256 (SSE-S3) or aws:kms (SSE-KMS)
    sse_kms_key_id: str | None = None
    acl: str | None = None  # a canned ACL, e.g. bucket-owner-full-control
    requester_pays: bool = False  # the source bucket is requester-pays: we pay
    keep_source_layout: bool = True  # copy in the source's parts, so ETags match (layout.py)
    # Multipart sources up to 5 GiB: "auto" copies them in parts on AWS and tries one
    # CopyObject on other stores (kept where it keeps the ETag); "always" copies in parts.
    part_copies: str = "auto"
    # The checksum algorithm each copy asks S3 for, replacing the source's (None: keep
    # the source's own checksum, and compare full-object ones; copy.upload_checksum).
    checksum_algorithm: str | None = None
    batch_files: int = 2000  # files per Prefect task run (and per batch table artifact)
    batch_bytes: int = 16 * GiB  # and at most this many bytes (a larger object is alone)
    source: Endpoint = Endpoint()
    destination: Endpoint = Endpoint()
    # The completion report (s3flow/audit.py): where, how long it is locked, and as whom
    # it is written (None: with the destination's credentials).
    report: str | None = None
    report_retention: str | None = None
    report_endpoint: Endpoint | None = None

    def __post_init__(self) -> None:
        from .errors import InputError, Problem

        checks = [
            (
                self.multipart_threshold >= MIN_PART_SIZE,
                "multipart threshold",
                f"must be at least 5 MiB, got {self.multipart_threshold / MiB:g} MiB",
            ),
            (
                MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE,
                "part size",
                f"must be 5 MiB to 5 GiB (S3's part limits), got {self.part_size / MiB:g} MiB",
            ),
            (self.max_concurrency >= 1, "concurrency", f"must be at least 1, got {self.max_concurrency}"),
            (self.part_concurrency >= 1, "part concurrency", f"must be at least 1, got {self.part_concurrency}"),
            (self.max_attempts >= 1, "max attempts", f"must be at least 1, got {self.max_attempts}"),
            (self.batch_files >= 1, "batch files", f"must be at least 1, got {self.batch_files}"),
            (
                self.storage_class in (None, *STORAGE_CLASSES),
                "storage class",
                f"{self.storage_class!r} is not one of {', '.join(sorted(STORAGE_CLASSES))}",
            ),
            (self.sse in (None, *SSE_MODES), "sse", f"{self.sse!r} is not one of {', '.join(sorted(SSE_MODES))}"),
            (
                not self.sse_kms_key_id or self.sse in ("aws:kms", "aws:kms:dsse"),
                "sse kms key id",
                "needs --sse aws:kms",
            ),
            (
                self.checksum_algorithm in (None, *CHECKSUM_ALGORITHMS),
                "checksum",
                f"{self.checksum_algorithm!r} is not one of {', '.join(sorted(CHECKSUM_ALGORITHMS))} or none",
            ),
            (
                self.part_copies in PART_COPIES,
                "part copies",
                f"{self.part_copies!r} is not one of {', '.join(PART_COPIES)}",
            ),
            (
                self.acl in (None, *CANNED_ACLS),
                "acl",
                f"{self.acl!r} is not a canned ACL ({', '.join(sorted(CANNED_ACLS))})",
            ),
        ]
        problems = [Problem(message, field=name) for ok, name, message in checks if not ok]
        if problems:
            raise InputError(problems, "options")

    def part_size_for(self, size: int) -> int:
        """The part size for an object: ours, grown so the parts fit in S3's 10,000."""
        part = self.part_size
        while part * MAX_PARTS < size:
            part *= 2
        return min(part, MAX_PART_SIZE)

    def is_multipart(self, size: int) -> bool:
        return size > self.multipart_threshold or size > MAX_SINGLE_COPY

    def parts(self, size: int) -> int:
        """How many parts a copy of this size takes (1: a single CopyObject)."""
        if not self.is_multipart(size):
            return 1
        return -(-size // self.part_size_for(size))
