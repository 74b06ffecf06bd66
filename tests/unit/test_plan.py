import pytest

from s3flow.config import MiB, TransferConfig
from s3flow.plan import CopyItem, DeleteItem, batches, decide
from s3flow.record import ObjectRef
from s3flow.storage import ObjectInfo


def info(key, size=10, etag="0" * 32, modified=1000.0, bucket="b"):
    return ObjectInfo(ObjectRef(bucket, key), size, etag, modified)


@pytest.mark.parametrize("source, destination, copy, why", [
    (info("k"), None, True, "new"),
    (info("k", size=10), info("k", size=11), True, "size differs"),
    (info("k", etag="a" * 32), info("k", etag="a" * 32), False, "identical"),
    (info("k", etag="a" * 32), info("k", etag="b" * 32), True, "content differs"),
    (info("k", etag="a" * 32, modified=100), info("k", etag="c" * 32 + "-3", modified=200),
     False, "destination newer"),
    (info("k", etag="a" * 32 + "-2", modified=300), info("k", etag="c" * 32 + "-2", modified=300),
     False, "destination newer"),
    (info("k", etag="a" * 32 + "-2", modified=300), info("k", etag="c" * 32 + "-2", modified=200),
     True, "source modified"),
])
def test_sync_decision_table(source, destination, copy, why):
    decided, reason = decide(source, destination)
    assert decided is copy
    assert why in reason


class FakeListing:
    """A storage whose listings come in the order given, two objects a page."""

    def __init__(self, objects):
        self.objects = objects

    def bucket_error(self, bucket):
        return None

    def list_page(self, bucket, prefix, token, start_after=None, max_keys=1000):
        """StartAfter as a marker in this store's own order (as SeaweedFS's walk has it)."""
        mine = [o for o in self.objects if o.ref.bucket == bucket and o.ref.key.startswith(prefix)]
        keys = [o.ref.key for o in mine]
        start = int(token) if token else (keys.index(start_after) + 1 if start_after else 0)
        more = start + 2 < len(mine)
        return mine[start:start + 2], str(start + 2) if more else None


@pytest.mark.parametrize("delete", [False, True])
def test_sync_join_does_not_depend_on_listing_order(delete):
    from s3flow.manifest import parse
    from s3flow.plan import Planner
    from s3flow.record import FileResult

    # Directory-walk order, as SeaweedFS lists: "in/d/x" before "in/d x".
    store = FakeListing([
        info("in/a", bucket="s1"), info("in/d/x", bucket="s1"), info("in/d x", bucket="s1"),
        info("in/same", etag="e" * 32, bucket="s1"),
        info("out/same", etag="e" * 32, bucket="d1"), info("out/d x", size=3, bucket="d1"),
        info("out/gone/y", bucket="d1"), info("out/gone z", bucket="d1")])
    planner = Planner(TransferConfig(delete=delete), store, store)
    planned = list(planner.plan(parse("s3://s1/in/,s3://d1/out/\n")))
    copies = sorted(p.destination.key for p in planned if isinstance(p, CopyItem))
    skips = [p.destination for p in planned if isinstance(p, FileResult)]
    deletes = sorted(p.destination.key for p in planned if isinstance(p, DeleteItem))
    assert copies == ["out/a", "out/d x", "out/d/x"]
    assert skips == ["s3://d1/out/same"]
    assert deletes == (["out/gone z", "out/gone/y"] if delete else [])


def test_batches_bound_files_and_bytes_and_keep_deletes_apart():
    config = TransferConfig(batch_files=3, batch_bytes=100 * MiB)
    small = [CopyItem(ObjectRef("b", f"k{i}"), ObjectRef("c", f"k{i}"), 1, info(f"k{i}", size=MiB))
             for i in range(7)]
    big = CopyItem(ObjectRef("b", "big"), ObjectRef("c", "big"), 1, info("big", size=500 * MiB))
    deletes = [DeleteItem(ObjectRef("c", f"d{i}"), 1, 5) for i in range(2)]
    result = list(batches([*small[:2], big, *deletes, *small[2:]], config))
    assert [len(batch) for batch in result] == [2, 1, 3, 2, 2]
    assert all(len({type(item) for item in batch}) == 1 for batch in result)
    assert [item.source_ref.key for item in result[1]] == ["big"]
    assert sum(len(batch) for batch in result) == 10


def test_shard_ranges_follow_the_store_order_and_cover_every_object_once():
    from s3flow.manifest import ManifestRow
    from s3flow.plan import Planner
    from s3flow.record import FileResult

    keys = ["in/a", "in/d/x", "in/d/y", "in/d x", "in/e", "in/b"]  # not key order
    store = FakeListing([info(k, bucket="s1") for k in keys] + [info("out/e", bucket="d1")])
    planner = Planner(TransferConfig(), store, store)
    whole = ManifestRow(1, ObjectRef("s1", "in/"), ObjectRef("d1", "out/"))
    shards = [ManifestRow(1, whole.source, whole.destination, after, count)
              for after, count in ((None, 2), ("d/x", 3), ("e", None))]

    planned = [list(planner.plan([row], {})) for row in shards]

    copied = [[p.source_ref.key for p in part if isinstance(p, CopyItem)] for part in planned]
    skipped = [[p.source for p in part if isinstance(p, FileResult)] for part in planned]
    assert copied == [["in/a", "in/d/x"], ["in/d/y", "in/d x"], ["in/b"]]
    assert skipped == [[], ["s3://s1/in/e"], []]  # its destination was found for that shard alone
