"""`s3flow history --reports` with thousands of completion reports: how long one question
takes, cold (every report fetched) and warm (the ETag-keyed cache), against a local
SeaweedFS. Reports are written by s3flow's own writer (s3flow/audit.py).

    bench/reports.py [--reports 2000] [--rows 200]

Prints seconds for: writing the reports, the cold question, the warm question, and the
warm question after one more report was written.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3flow.audit import Report  # noqa: E402
from s3flow.config import Endpoint  # noqa: E402
from s3flow.local import SeaweedS3  # noqa: E402
from s3flow.record import COPIED, FileResult, ObjectRef  # noqa: E402
from s3flow.storage import Storage  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def write(storage: Storage, bucket: str, number: int, rows: int) -> None:
    report = Report(storage, ObjectRef(bucket, "reports/"), f"batch-{number % 50}", f"run-{number:05d}", "m.csv")
    now = time.time()
    for row in range(rows):
        key = f"run{number}/sample-{row}.cram"
        report.add(
            FileResult(
                f"s3://seq/{key}", f"s3://lab/{key}", COPIED, size=1 << 30, attempts=1, started=now, ended=now,
                etag="e" * 32, evidence="ETag", destination_etag="e" * 32,
            )
        )
    report.close("completed")


def ask(env: dict, uri: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [str(VENV_BIN / "s3flow"), "history", uri, "--reports", f"s3://{env['BUCKET']}/reports/", "--json"],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="s3flow-bench-reports-"))
    with SeaweedS3(home / "seaweed") as seaweed:
        client = seaweed.client()
        client.create_bucket(Bucket="audit")
        import os

        for name, value in seaweed.env().items():
            os.environ[name] = value
        storage = Storage(Endpoint())
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: write(storage, "audit", n, args.rows), range(args.reports)))
        written = time.monotonic() - started
        env = {**os.environ, "BUCKET": "audit", "S3FLOW_CACHE": str(home / "cache")}
        uri = "s3://lab/run7/sample-3.cram"
        cold, warm = ask(env, uri), ask(env, uri)
        write(storage, "audit", args.reports, args.rows)
        one_more = ask(env, uri)
    print(f"{args.reports:,} reports of {args.rows} rows ({args.reports * args.rows:,} file rows)")
    print(f"write all: {written:.1f} s; history cold: {cold:.1f} s; warm: {warm:.1f} s; "
          f"warm after one more report: {one_more:.1f} s")


if __name__ == "__main__":
    main()
