"""`s3flow status <flow-run-id>` while a transfer runs, after it ends, and for unknown ids."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

from s3flow.cli import main
from tests.conftest import VENV_BIN
from tests.faultproxy import Faults
from tests.integration.test_faults import fill


def running_transfer(since: datetime, timeout: float = 60) -> str:
    """The run that started after `since` and is running (an earlier test's killed run
    stays RUNNING on the session's server, so time tells ours apart)."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
                    start_time=FlowRunFilterStartTime(after_=since)),
                sort=FlowRunSort.START_TIME_DESC, limit=1)
            if runs:
                return str(runs[0].id)
            time.sleep(0.3)
    raise AssertionError("no transfer started")


def status(capsys, run_id: str) -> dict:
    assert main(["status", run_id, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_while_running_and_after(seaweed, prefect_server, prefect_api, buckets, proxy,
                                        write_manifest, capsys):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    fill(c, src, 2000)
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", "status.csv")
    proxy.faults = Faults(delay=0.01)
    env = {**os.environ, **prefect_server.env(), "AWS_ENDPOINT_URL": proxy.url}
    since = datetime.now(UTC)
    transfer = subprocess.Popen(
        [str(VENV_BIN / "s3flow"), "transfer", manifest, "--concurrency", "4", "--batch-files", "100"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id = running_transfer(since)

    deadline = time.monotonic() + 60
    while (during := status(capsys, run_id))["files"] == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert transfer.poll() is None, "the transfer ended before its status could be read mid-way"
    assert during["state"] == "RUNNING" and not during["complete"]
    assert 0 < during["files"] < 2000 and during["counts"] == {"copied": during["files"]}

    assert transfer.wait(timeout=300) == 0
    after = status(capsys, run_id)
    assert after["state"] == "COMPLETED" and after["complete"]
    assert (after["files"], after["counts"]) == (2000, {"copied": 2000})
    assert after["bytes_copied"] == sum(row["size"] for row in after["rows"]) > 0
    assert main(["status", run_id]) == 0
    text = capsys.readouterr().out
    assert f"{run_id}" in text and "COMPLETED" in text and "2,000 copied" in text


def test_status_of_an_unknown_run_says_so(prefect_api, capsys):
    missing = str(uuid.uuid4())
    assert main(["status", missing]) == 2
    assert f"no flow run {missing}" in capsys.readouterr().err
    assert main(["status", "batch-42"]) == 2
    assert "is not a flow run id" in capsys.readouterr().err


def keys_at(client, bucket: str) -> set[str]:
    found = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update(item["Key"] for item in page.get("Contents", ()))
    return found


def start_slow_transfer(seaweed, prefect_server, proxy, buckets, write_manifest, name: str, objects: int):
    """A transfer of `objects` small files in ONE batch (the default 2,000 files), slowed
    by the proxy so that it runs for a while: its files are decided one by one."""
    src, dst = buckets("src", "dst")
    fill(seaweed.client(), src, objects)
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", name)
    proxy.faults = Faults(delay=0.05)
    env = {**os.environ, **prefect_server.env(), "AWS_ENDPOINT_URL": proxy.url}
    since = datetime.now(UTC)
    process = subprocess.Popen([str(VENV_BIN / "s3flow"), "transfer", manifest, "--concurrency", "2"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, running_transfer(since), dst


def test_a_copied_file_is_in_status_within_seconds_while_its_batch_runs(
        seaweed, prefect_server, prefect_api, buckets, proxy, write_manifest, capsys):
    process, run_id, dst = start_slow_transfer(seaweed, prefect_server, proxy, buckets, write_manifest,
                                               "live.csv", 600)
    client = seaweed.client()
    try:
        deadline = time.monotonic() + 120
        while not (arrived := keys_at(client, dst)) and time.monotonic() < deadline:
            time.sleep(0.1)
        copied_at, first = time.monotonic(), f"s3://{dst}/{sorted(arrived)[0]}"
        while time.monotonic() < deadline:
            during = status(capsys, run_id)
            if first in {row["destination"] for row in during["rows"]}:
                break
            time.sleep(0.2)
        lag = time.monotonic() - copied_at
        print(f"{first} was in `s3flow status` {lag:.1f} s after it arrived")
        assert process.poll() is None, "the transfer ended before its files were seen one by one"
        assert not during["complete"] and 0 < during["files"] < 600  # its one batch is still running
        assert set(during["counts"]) == {"copied"}
        # Generous: the contract is 2 s (flows/live.py sends every second); a loaded machine
        # adds the status command's own time. Batch-wise recording would be 20 s and more here.
        assert lag < 10, f"a copied file took {lag:.1f} s to reach `s3flow status`"
    finally:
        process.kill()
        process.wait()


def test_a_killed_transfer_keeps_its_finished_files_in_status(
        seaweed, prefect_server, prefect_api, buckets, proxy, write_manifest, capsys):
    process, run_id, dst = start_slow_transfer(seaweed, prefect_server, proxy, buckets, write_manifest,
                                               "killed.csv", 600)
    deadline = time.monotonic() + 120
    while status(capsys, run_id)["files"] < 50 and time.monotonic() < deadline:
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    arrived = keys_at(seaweed.client(), dst)
    after = status(capsys, run_id)
    recorded = {row["destination"] for row in after["rows"]}
    assert after["files"] >= 50 and set(after["counts"]) == {"copied"}
    assert recorded <= {f"s3://{dst}/{key}" for key in arrived}  # nothing recorded that is not there
    assert len(arrived) < 600, "the kill came after the transfer had finished"
