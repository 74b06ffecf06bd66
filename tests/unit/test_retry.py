import pytest

from s3flow.config import TransferConfig
from s3flow.errors import S3Error, is_transient
from s3flow.retry import Attempts, Retrier


@pytest.mark.parametrize("code", ["SlowDown", "503", "InternalError", "500", "Throttling",
                                  "RequestTimeout", "ConnectionError", "Timeout"])
def test_transient_codes(code):
    assert is_transient(code)


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchKey", "NoSuchBucket", "InvalidObjectState",
                                  "ExpiredToken", "PreconditionFailed"])
def test_permanent_codes(code):
    assert not is_transient(code)


def flaky(codes):
    """A request that fails with each code in turn, then answers 'done'."""
    calls = []

    def request():
        calls.append(1)
        if len(calls) <= len(codes):
            raise S3Error(codes[len(calls) - 1], "injected")
        return "done"

    return request, calls


def test_transient_errors_are_retried_with_growing_jittered_backoff():
    sleeps = []
    retrier = Retrier(TransferConfig(max_attempts=5, backoff_base=0.5, backoff_cap=3),
                      sleep=sleeps.append)
    request, calls = flaky(["SlowDown", "500", "ConnectionError"])
    attempts = Attempts()
    assert retrier.call(request, attempts=attempts) == "done"
    assert (attempts.requests, attempts.retries, attempts.tries) == (4, 3, 4) and len(calls) == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= bound for s, bound in zip(sleeps, [0.5, 1.0, 2.0]))


def test_permanent_error_fails_at_once():
    retrier = Retrier(TransferConfig(), sleep=lambda s: pytest.fail("slept"))
    request, calls = flaky(["AccessDenied"])
    with pytest.raises(S3Error, match="AccessDenied"):
        retrier.call(request)
    assert len(calls) == 1


def test_gives_up_after_max_attempts():
    retrier = Retrier(TransferConfig(max_attempts=3), sleep=lambda s: None)
    request, calls = flaky(["SlowDown"] * 10)
    with pytest.raises(S3Error, match="SlowDown"):
        retrier.call(request)
    assert len(calls) == 3


def test_backoff_is_capped():
    retrier = Retrier(TransferConfig(backoff_base=1, backoff_cap=4))
    assert max(retrier.delay(20) for _ in range(200)) <= 4
