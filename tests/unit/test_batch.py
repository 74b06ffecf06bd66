"""A batch of created objects as a transfer's rows, and the lag every view reports."""
import pytest

from s3flow.errors import InputError
from s3flow.record import COPIED, FAILED, SKIPPED, FileResult
from s3flow.replicate import batch_rows
from s3flow.report import Summary


def test_a_batch_is_a_row_per_object_and_destination_each_with_its_event_time():
    objects = [{"key": "rel/a.bin", "event_time": "2026-11-30T10:00:01Z"},
               {"key": "rel/b.bin", "event_time": "2026-11-30T10:00:02.500Z", "version_id": "v2"},
               {"key": "rel/a.bin", "event_time": "2026-11-30T10:00:00Z"}]  # delivered twice: the first
    rows = batch_rows("builds", objects, ["region-a", "region-b"])
    assert [(r.line, r.source.uri, r.destination.uri) for r in rows] == [
        (1, "s3://builds/rel/a.bin", "s3://region-a/rel/a.bin"),
        (2, "s3://builds/rel/a.bin", "s3://region-b/rel/a.bin"),
        (3, "s3://builds/rel/b.bin?versionId=v2", "s3://region-a/rel/b.bin"),
        (4, "s3://builds/rel/b.bin?versionId=v2", "s3://region-b/rel/b.bin")]
    assert rows[0].event_time == 1796032800.0  # 10:00:00, the earliest delivery
    assert rows[2].event_time == 1796032802.5


def test_a_bad_batch_names_every_problem():
    with pytest.raises(InputError) as caught:
        batch_rows("builds", [{"key": "dir/"}, {}], ["Bad_Bucket", "builds"])
    text = str(caught.value)
    for field in ("objects[0].key", "objects[1].key", "destination_buckets[0]", "among the destinations"):
        assert field in text, field


def test_lag_p50_and_p99_from_copied_and_skipped_files():
    summary = Summary()
    for n in range(100):  # lags of 1..100 s
        summary.add_one(FileResult("s3://a/k", f"s3://b/{n}", COPIED if n % 2 else SKIPPED,
                                   event_time=1000.0, ended=1001.0 + n))
    summary.add_one(FileResult("s3://a/k", "s3://c/x", FAILED, event_time=1000.0, ended=5000.0))  # not copied
    assert summary.lag() == {"files": 100, "p50": 50.0, "p99": 99.0}
    assert summary.to_json()["lag"]["p99"] == 99.0
    assert Summary().lag() is None and "lag" not in Summary().to_json()
    row = FileResult("s3://a/k", "s3://b/k", COPIED, event_time=1000.0, started=1001.0, ended=1003.25).row()
    assert row["lag"] == 3.25 and FileResult.from_row(row).lag == 3.25  # status reads it back from rows
