"""Retry an S3 request on transient errors, with exponential backoff and full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .config import TransferConfig
from .errors import S3Error

T = TypeVar("T")


class Attempts:
    """Counts one file's S3 requests, and the retries among them.

    A file's `attempts` (its tries) is 1 + the retries of any of its requests: a
    clean copy is 1 try however many requests (HEAD, parts, complete) it took."""

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0

    @property
    def tries(self) -> int:
        return 1 + self.retries if self.requests else 0


class Retrier:
    def __init__(self, config: TransferConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.sleep = sleep

    def delay(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**retry)] (AWS architecture blog)."""
        return random.uniform(0, min(self.config.backoff_cap, self.config.backoff_base * 2**retry))

    def call(self, request: Callable[..., T], *args, attempts: Attempts | None = None) -> T:
        for retry in range(self.config.max_attempts):
            if attempts is not None:
                attempts.requests += 1
                attempts.retries += 1 if retry else 0
            try:
                return request(*args)
            except S3Error as exc:
                if not exc.transient or retry + 1 == self.config.max_attempts:
                    raise
            self.sleep(self.delay(retry))
        raise AssertionError("unreachable")
