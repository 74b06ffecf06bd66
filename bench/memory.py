"""Peak memory of planning and running a 1,000,000-object transfer, on a synthetic store.

The store lists N objects (1,000 a page, generated on the fly) and answers every
CopyObject at once, so what is measured is s3flow's own memory: the shipped transfer loop
(s3flow.transfer: planner with its streaming listing and destination index,
batcher, runner, copier, summary) with its bounds (8 batches in flight, 2 x 8 waiting).

    bench/memory.py [--objects 1000000] [--existing 0]

--existing N puts the first N objects in the destination too (a resumed sync: they
are listed into the destination index and skipped).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s3flow.config import TransferConfig
from s3flow.manifest import parse
from s3flow.record import ObjectRef
from s3flow.storage import ObjectInfo, Written
from s3flow.transfer import Transfer

ETAG = "9e107d9d372bb6826bd81d3542a419d6"


class SyntheticStore:
    """A bucket "src" of `objects` objects and a bucket "dst" with the first `existing`."""

    endpoint_url = "synthetic://"
    copy_lane = None

    def __init__(self, objects: int, existing: int) -> None:
        self.sizes = {"src": objects, "dst": existing}
        self.copies = 0

    def bucket_error(self, bucket: str) -> None:
        return None

    def list_page(self, bucket, prefix, token, start_after=None, max_keys=1000):
        start = int(token or 0)
        end = min(start + 1000, self.sizes[bucket])
        page = [ObjectInfo(ObjectRef(bucket, f"{prefix}sample-{i // 1000:04d}/read-{i:07d}.fq.gz"),
                           16 << 10, ETAG, 1.7e9) for i in range(start, end)]
        return page, (str(end) if end < self.sizes[bucket] else None)

    def copy_object(self, source, destination, properties) -> Written:
        self.copies += 1
        return Written(source.etag, "CRC32C:AAAAAA==")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--existing", type=int, default=0)
    args = parser.parse_args()
    store = SyntheticStore(args.objects, args.existing)
    config = TransferConfig(max_concurrency=64)
    rows = parse("source,destination\ns3://src/run-42/,s3://dst/run-42/\n")
    start_rss, started = peak_mib(), time.monotonic()
    transfer = Transfer("synthetic", config, rows, store, store, {})
    summary = transfer.run().summary  # the shipped loop: planner, batcher, runner, copier
    seconds = time.monotonic() - started
    print(f"{summary.files:,} files ({summary.copied:,} copied, {summary.skipped:,} skipped, "
          f"{store.copies:,} CopyObject) in {seconds:.0f} s; peak RSS {peak_mib():.0f} MiB "
          f"(at start {start_rss:.0f} MiB, after imports)")
    ok = summary.files == args.objects and summary.copied == args.objects - args.existing
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
