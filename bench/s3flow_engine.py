"""s3flow's copy engine alone, without Prefect: the same planner, copier and copy lane
`s3flow transfer` runs, minus the flow, the per-file artifacts and the history events.
It shows what the data path costs, apart from the bookkeeping that makes a transfer
traceable.

    s3flow_engine.py MANIFEST WORKERS
"""
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3flow.config import TransferConfig
from s3flow.copy import Copier
from s3flow.manifest import parse
from s3flow.plan import Batcher, Planner
from s3flow.record import FileResult
from s3flow.storage import Storage


def main(manifest: str, workers: int) -> int:
    config = TransferConfig(max_concurrency=workers)
    rows = parse(Path(manifest).read_text())
    source, destination = Storage(max_connections=workers), Storage(max_connections=workers)
    statuses: Counter = Counter()
    with Copier(config, source, destination) as copier, ThreadPoolExecutor(8) as batches:
        batcher, running = Batcher(config), []  # 8 batches at once, as the flow runs them
        for planned in Planner(config, source, destination).plan(rows):
            if isinstance(planned, FileResult):
                statuses[planned.status] += 1
                continue
            running += [batches.submit(copier.run, batch) for batch in batcher.add(planned)]
        running += [batches.submit(copier.run, batch) for batch in batcher.flush()]
        for done in running:
            statuses.update(result.status for result in done.result())
    print(dict(statuses))
    return 0 if set(statuses) <= {"copied", "skipped"} else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
