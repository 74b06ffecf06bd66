"""The engine's one transfer loop (s3flow.transfer) on an in-memory store.

The store stands in for S3 at the storage boundary (the interface s3flow.storage
serves); everything above it, the planner, batcher, runner and copier, is the code
that ships."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace

from s3flow.config import TransferConfig
from s3flow.manifest import parse
from s3flow.record import COPIED, FAILED, SKIPPED, ObjectRef, Status
from s3flow.storage import ObjectInfo, Written
from s3flow.transfer import Batch, Transfer

ETAG = "9e107d9d372bb6826bd81d3542a419d6"


class MemoryStore:
    """Buckets in a dict; `explode` names keys whose copy raises a non-S3 exception."""

    endpoint_url = "memory://"
    copy_lane = None
    is_aws = False

    def __init__(self, objects: dict[str, dict[str, int]], explode: set[str] = frozenset()) -> None:
        self.objects = {bucket: {key: ObjectInfo(ObjectRef(bucket, key), size, ETAG, 1.7e9)
                                 for key, size in keys.items()} for bucket, keys in objects.items()}
        self.explode = explode
        self.copies: Counter = Counter()
        self._lock = threading.Lock()

    def bucket_error(self, bucket: str):
        return None if bucket in self.objects else "NoSuchBucket"

    def list_page(self, bucket, prefix, token, start_after=None, max_keys=1000):
        keys = sorted(k for k in self.objects[bucket] if k.startswith(prefix))
        return [self.objects[bucket][k] for k in keys], None

    def head(self, ref: ObjectRef):
        return self.objects.get(ref.bucket, {}).get(ref.key)

    def copy_object(self, source: ObjectInfo, destination: ObjectRef, properties) -> Written:
        with self._lock:
            self.copies[destination.key] += 1
        if source.ref.key in self.explode:
            raise ValueError(f"a bug met {source.ref.key}")
        self.objects[destination.bucket][destination.key] = replace(source, ref=destination)
        return Written(source.etag, "")


def transfer(store: MemoryStore, manifest: str, **config) -> Transfer:
    rows = parse(manifest)
    return Transfer("test.csv", TransferConfig(max_concurrency=8, **config), rows, store, store, {})


def test_every_file_is_handed_over_once_the_moment_it_is_decided():
    store = MemoryStore({"src": {f"d/{i:03d}": 10 + i for i in range(250)}, "dst": {"d/000": 10}})
    seen = []
    outcome = transfer(store, "s3://src/d/,s3://dst/d/\n", batch_files=40).run(seen.append)
    assert Counter(r.status for r in seen) == {COPIED: 249, SKIPPED: 1}
    assert len({r.destination for r in seen}) == 250  # one result per file
    assert (outcome.summary.copied, outcome.summary.skipped, outcome.summary.files) == (249, 1, 250)
    assert all(n == 1 for n in store.copies.values()) and len(store.copies) == 249
    assert all(isinstance(r.status, Status) and r.attempts == 1 for r in seen if r.status == COPIED)
    assert all(r.attempts == 0 for r in seen if r.status == SKIPPED)


def test_an_unexpected_exception_fails_only_its_file_and_nothing_is_copied_twice():
    store = MemoryStore({"src": {f"d/{i:03d}": 10 for i in range(300)}, "dst": {}},
                        explode={"d/123"})
    seen = []
    outcome = transfer(store, "s3://src/d/,s3://dst/d/\n", batch_files=2000).run(seen.append)
    failed = [r for r in seen if r.status == FAILED]
    assert [(r.destination, r.error_code) for r in failed] == [("s3://dst/d/123", "Unexpected")]
    assert "ValueError: a bug met d/123" in failed[0].error_message
    assert outcome.summary.copied == 299 and len(seen) == 300
    assert set(store.copies.values()) == {1}  # every file tried once, the failed one included


def test_a_batch_run_again_runs_only_the_files_without_a_result():
    store = MemoryStore({"src": {f"k{i}": 5 for i in range(20)}, "dst": {}})
    job = transfer(store, "".join(f"s3://src/k{i},s3://dst/k{i}\n" for i in range(20)))
    planned = [item for item in job.plan()]
    with job.runner() as runner:
        batch = Batch(1, planned)
        runner.execute_batch(batch)
        runner.execute_batch(batch)  # a task retry after the batch's files were all decided
    assert len(batch.results) == 20 and set(store.copies.values()) == {1}
    assert runner.summary.copied == 20


def test_object_rows_are_decided_by_the_plan_and_a_dry_run_copies_nothing():
    store = MemoryStore({"src": {"a": 5, "b": 6}, "dst": {"a": 5}})
    seen = []
    outcome = transfer(store, "s3://src/a,s3://dst/a\ns3://src/b,s3://dst/b\ns3://src/gone,s3://dst/gone\n",
                       dry_run=True).run(seen.append)
    by_source = {r.source: r for r in seen}
    assert by_source["s3://src/a"].status == SKIPPED
    assert by_source["s3://src/b"].status == "would-copy" and by_source["s3://src/b"].detail == "new: CopyObject"
    assert (by_source["s3://src/gone"].status, by_source["s3://src/gone"].error_code) == (FAILED, "NoSuchKey")
    assert not store.copies and outcome.summary.would_copy == 1


def test_failures_are_grouped_by_cause():
    store = MemoryStore({"src": {f"d/{i}": 1 for i in range(40)}})
    job = transfer(store, "s3://src/d/,s3://typo-bucket/d/\n")
    missing = {"typo-bucket": ("NoSuchBucket", "the destination bucket 'typo-bucket' does not exist")}
    outcome = Transfer("t", TransferConfig(), job.rows, store, store, missing).run()
    assert outcome.summary.failed == 40
    lines = outcome.summary.cause_lines()
    assert len(lines) == 1 and lines[0].startswith("NoSuchBucket x40 (destination bucket 'typo-bucket')")
