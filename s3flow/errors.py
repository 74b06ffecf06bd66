"""Typed errors, and the one table that says which S3 errors are worth a retry."""

from __future__ import annotations

from dataclasses import dataclass

# Retry classes, decided by S3 error code (never by message text).
#
# | class      | codes                                                        | what we do            |
# |------------|--------------------------------------------------------------|-----------------------|
# | transient  | SlowDown, 503, ServiceUnavailable, InternalError, 500, 502,  | back off and retry    |
# |            | 504, RequestTimeout, Throttling, ThrottlingException,        |                       |
# |            | TooManyRequests(Exception), RequestLimitExceeded,            |                       |
# |            | ProvisionedThroughputExceeded..., connection resets and      |                       |
# |            | timeouts (our code ConnectionError / Timeout)                |                       |
# | permanent  | everything else: AccessDenied, NoSuchKey, NoSuchBucket,      | fail that file at once|
# |            | InvalidObjectState, PreconditionFailed, ExpiredToken, ...    | with the code recorded|
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "503",
        "ServiceUnavailable",
        "InternalError",
        "500",
        "502",
        "504",
        "RequestTimeout",
        "RequestTimeoutException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "ConnectionError",
        "Timeout",
    }
)

# Codes by which S3 asks a client to send fewer requests: besides the retry, the
# transfer halves its requests in flight (copy.AdaptiveSlots).
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "503",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)

# Codes that say the credentials themselves are wrong (not a missing permission):
# bad input, reported before anything is copied.
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
    }
)


def is_transient(code: str) -> bool:
    return code in TRANSIENT_CODES


class S3flowError(Exception):
    """Base of every error s3flow decides on."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, where it was found."""

    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(self.field)
        return f"{', '.join(where)}: {self.message}" if where else self.message


class InputError(S3flowError):
    """Bad user input (manifest, options, credentials): exit code 2, nothing copied."""

    def __init__(self, problems: list[Problem] | str, source: str = "") -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = problems
        self.source = source
        super().__init__(self.describe())

    def describe(self, limit: int = 50) -> str:
        head = f"{self.source}: " if self.source else ""
        lines = [f"{head}{problem}" for problem in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)


class S3Error(S3flowError):
    """An S3 request failed; `code` is S3's error code (or ours for network faults)."""

    def __init__(self, code: str, message: str, bucket: str = "", key: str = "") -> None:
        self.code = code
        self.message = message
        self.bucket = bucket
        self.key = key
        super().__init__(self.describe())

    @property
    def transient(self) -> bool:
        return is_transient(self.code)

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.key}" if self.bucket else ""
        text = f"{self.code}: {self.message}" if self.message else self.code
        return f"{text} ({where})" if where else text
