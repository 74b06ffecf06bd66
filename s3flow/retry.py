"""Retry an S3 request on transient errors, with exponential backoff and full jitter."""
from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from .config import TransferConfig
from .errors import S3Error

T = TypeVar("T")


class Attempts:
    """Counts the tries made for one file, across all of its requests."""

    def __init__(self) -> None:
        self.count = 0


class Retrier:
    def __init__(self, config: TransferConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.sleep = sleep

    def delay(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**retry)] (AWS architecture blog)."""
        return random.uniform(0, min(self.config.backoff_cap, self.config.backoff_base * 2 ** retry))

    def call(self, request: Callable[..., T], *args, attempts: Attempts | None = None) -> T:
        for retry in range(self.config.max_attempts):
            if attempts is not None:
                attempts.count += 1
            try:
                return request(*args)
            except S3Error as exc:
                if not exc.transient or retry + 1 == self.config.max_attempts:
                    raise
            self.sleep(self.delay(retry))
        raise AssertionError("unreachable")
