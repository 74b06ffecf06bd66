"""Transfers through a proxy that injects faults, and a transfer killed mid-way."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from s3flow.flows.status import transfer_status
from s3flow.flows.transfer import artifact_base, transfer_manifest
from tests.conftest import VENV_BIN, listing, put_multipart
from tests.faultproxy import Faults
from tests.integration.test_transfer_flow import artifacts, table_rows

MiB = 1024 * 1024


def fill(client, bucket: str, count: int, prefix: str = "reads/") -> dict[str, bytes]:
    objects = {f"{prefix}{i:05d}.fq": os.urandom(64 + i % 200) for i in range(count)}
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))
    return objects


def test_every_object_arrives_under_20_percent_injected_faults(seaweed, buckets, proxy, prefect_api,
                                                               write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 2000)
    big = os.urandom(12 * MiB)
    put_multipart(c, src, "reads/big.bam", big, 5 * MiB)
    objects["reads/big.bam"] = big
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", "faulty.csv")
    proxy.faults = Faults(rate=0.2, kinds=("slowdown", "internal", "reset"))

    state = transfer_manifest(manifest=manifest, max_attempts=12, return_state=True)

    injected = [s for s in proxy.seen if s.fault]
    assert len(injected) > 300 and {s.fault for s in injected} == {"slowdown", "internal", "reset"}
    assert state.is_completed(), state.message
    assert listing(c, dst) == objects
    files = artifacts(f"{artifact_base(manifest)}-files")[0]
    assert len(table_rows(files)) == 1000  # the UI's table: its first rows, rendered in seconds
    rows = transfer_status(str(files.flow_run_id))["rows"]  # every file
    assert len(rows) == len(objects) and {row["status"] for row in rows} == {"copied"}
    retried = [row for row in rows if row["attempts"] > 1]
    assert len(retried) > 100  # the per-file records show the retries
    assert not c.list_multipart_uploads(Bucket=dst).get("Uploads")
    # Adaptive back-off: the SlowDowns made the transfer lower its requests in flight.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    time.sleep(2)  # logs reach the server in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
            any_=[state.state_details.flow_run_id])))
    assert any("asked this transfer to slow down" in log.message for log in logs)


def test_permanent_access_denied_fails_those_files_only(seaweed, buckets, proxy, prefect_api,
                                                        write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 200, "data/")
    secret = fill(c, src, 5, "data/secret/")
    manifest = write_manifest(f"s3://{src}/data/,s3://{dst}/data/\n", "denied.csv")
    proxy.faults = Faults(denied=("secret/",))

    state = transfer_manifest(manifest=manifest, return_state=True)

    assert state.is_failed() and "5 of 205 files failed (AccessDenied x5)" in state.message
    rows = table_rows(artifacts(f"{artifact_base(manifest)}-files")[0])
    failed = [row for row in rows if row["status"] == "failed"]
    assert sorted(row["source"] for row in failed) == sorted(f"s3://{src}/{k}" for k in secret)
    assert all(row["error"].startswith("AccessDenied") and row["attempts"] == 1 for row in failed)
    assert listing(c, dst) == objects


def test_killed_transfer_resumes_without_recopying_finished_objects(seaweed, prefect_server, buckets,
                                                                   proxy, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 3000)
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", "resume.csv")
    proxy.faults = Faults(delay=0.01)  # slow enough to kill it half-way
    env = {**os.environ, **prefect_server.env(), "AWS_ENDPOINT_URL": proxy.url}
    command = [str(VENV_BIN / "s3flow"), "transfer", manifest, "--concurrency", "4", "--json"]

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while len(listing_keys(c, dst)) < 600 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(1)  # requests the proxy had already forwarded finish at the server
    finished = listing_keys(c, dst)
    assert 600 <= len(finished) < len(objects), len(finished)

    proxy.seen.clear()
    proxy.faults = Faults()
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert second.returncode == 0, second.stderr[-2000:]
    recopied = [s.key for s in proxy.seen if s.copy_source and s.key in finished]
    assert recopied == []  # the bound: no copy request for an object that had arrived
    assert sum(1 for s in proxy.seen if s.copy_source) == len(objects) - len(finished)
    assert listing(c, dst) == objects


def listing_keys(client, bucket: str) -> set[str]:
    return {item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", ())}
