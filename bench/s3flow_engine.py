"""s3flow's engine alone, without Prefect: the very loop `s3flow transfer` runs
(s3flow.transfer: open, plan, run, with its batches on threads instead of Prefect
task runs), minus the flow, the artifacts and the history events. It shows what the
data path costs, apart from the bookkeeping that makes a transfer traceable.

    s3flow_engine.py MANIFEST WORKERS
"""
import sys

from s3flow.config import TransferConfig
from s3flow.transfer import Transfer


def main(manifest: str, workers: int) -> int:
    outcome = Transfer.open(manifest, TransferConfig(max_concurrency=workers)).run()
    summary = outcome.summary
    print({"copied": summary.copied, "skipped": summary.skipped, "failed": summary.failed})
    return 0 if summary.failed == summary.cancelled == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
