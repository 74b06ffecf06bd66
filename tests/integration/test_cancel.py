"""Cancelling a running transfer: from Prefect (a worker's run) and with Ctrl-C (`s3flow transfer`).

Either way: no multipart upload is left open at the destination, every file has
a result (copied ones arrived whole, cancelled ones are not at the destination),
the run ends Cancelled, and running the transfer again finishes it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from s3flow.flows.transfer import artifact_base
from tests.conftest import VENV_BIN, listing, put_multipart
from tests.faultproxy import FaultProxy, Faults
from tests.integration.conftest import prefect_cli
from tests.integration.test_faults import fill
from tests.integration.test_transfer_flow import artifacts, table_rows

MiB = 1024 * 1024
# Every request a quarter second, those of the multipart objects 2 s: the transfer
# takes over 30 s, and a cancel finds parts still to copy.
SLOW = Faults(delay=0.25, slow=("cram/",), slow_delay=2.0)
COPY_OPTIONS = {"multipart_threshold_mib": 5, "part_size_mib": 5, "part_copies": "always",
                "part_concurrency": 1, "max_concurrency": 4}


@pytest.fixture()
def slow_proxy(seaweed):
    server = FaultProxy(seaweed.port, SLOW).start()
    yield server
    server.stop()


def source_data(client, src: str) -> dict[str, bytes]:
    """Three multipart objects (5 parts each) and 200 small ones."""
    objects = fill(client, src, 200, "reads/")
    for n in range(3):
        data = os.urandom(24 * MiB)
        put_multipart(client, src, f"cram/sample-{n}.cram", data, 5 * MiB)
        objects[f"cram/sample-{n}.cram"] = data
    return objects


def manifest_text(src: str, dst: str) -> str:
    big = "".join(f"s3://{src}/cram/sample-{n}.cram,s3://{dst}/cram/sample-{n}.cram\n" for n in range(3))
    return big + f"s3://{src}/reads/,s3://{dst}/reads/\n"


def wait_for_part_copies(proxy: FaultProxy, process: subprocess.Popen | None = None) -> None:
    """Until a multipart copy is under way and some small objects have been copied."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        parts = [s for s in proxy.seen if s.copy_source and "partNumber" in s.query]
        if parts and sum(1 for s in proxy.seen if s.copy_source) >= 20:
            return
        time.sleep(0.1)
    raise AssertionError("the transfer never got to copying parts")


def start_transfer(manifest: str, seaweed, prefect_api, proxy: FaultProxy):
    """`s3flow transfer` through the proxy, once a multipart copy is under way:
    (command, env, the running process)."""
    env = {**os.environ, **seaweed.env(), **prefect_api.env(), "AWS_ENDPOINT_URL": proxy.url}
    command = [str(VENV_BIN / "s3flow"), "transfer", manifest, "--multipart-threshold-mib", "5",
               "--part-size-mib", "5", "--part-copies", "always", "--part-concurrency", "1", "--concurrency", "4"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    wait_for_part_copies(proxy, process)
    return command, env, process


def check_cancelled(client, src: str, dst: str, objects: dict[str, bytes], rows: list[dict]) -> None:
    assert not client.list_multipart_uploads(Bucket=dst).get("Uploads")  # every upload aborted
    arrived = listing(client, dst)
    by_key = {row["destination"].removeprefix(f"s3://{dst}/"): row for row in rows}
    assert set(by_key) == set(objects)  # every file has its own result, none lost
    statuses = {row["status"] for row in rows}
    assert statuses <= {"copied", "cancelled"} and statuses == {"copied", "cancelled"}, statuses
    for key, row in by_key.items():
        if row["status"] == "copied":
            assert arrived[key] == objects[key]
        else:
            assert key not in arrived and row["error"].startswith("Cancelled:"), row
    # a multipart copy was stopped between its parts: its row says the upload was aborted
    assert any("upload was aborted" in row["error"] for row in rows if row["status"] == "cancelled")


def final_state(run_id, timeout: float = 90):
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state.is_final() or time.monotonic() > deadline:
                return run.state
            time.sleep(0.5)


def test_prefect_cancel_stops_a_workers_transfer(worker, seaweed, buckets, slow_proxy, prefect_api):
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    src, dst, manifests = buckets("src", "dst", "manifests")
    c = seaweed.client()
    objects = source_data(c, src)
    manifest = f"s3://{manifests}/cancel.csv"
    c.put_object(Bucket=manifests, Key="cancel.csv", Body=manifest_text(src, dst).encode())
    block = f"slow-{uuid.uuid4().hex[:8]}"
    AwsCredentials(aws_access_key_id=seaweed.access_key, aws_secret_access_key=seaweed.secret_key,
                   region_name="us-east-1",
                   aws_client_parameters=AwsClientParameters(endpoint_url=slow_proxy.url)).save(block)
    params = {"manifest": manifest, "source_credentials": block, "destination_credentials": block,
              **COPY_OPTIONS}

    run = run_deployment("transfer-manifest/manual", parameters=params, timeout=0)
    wait_for_part_copies(slow_proxy)
    env = {**os.environ, **prefect_api.env()}
    cancelled_at = time.monotonic()
    prefect_cli("flow-run", "cancel", str(run.id), env=env)
    state = final_state(run.id)

    assert state.type == StateType.CANCELLED, state
    assert time.monotonic() - cancelled_at < 60
    files = artifacts(f"{artifact_base(manifest)}-files")[0]
    assert files.flow_run_id == run.id
    check_cancelled(c, src, dst, objects, table_rows(files))

    slow_proxy.faults = Faults()
    again = run_deployment("transfer-manifest/manual", parameters=params, timeout=240)
    assert again.state.is_completed(), again.state
    assert listing(c, dst) == objects


def test_ctrl_c_stops_s3flow_transfer_and_the_same_command_finishes_it(
        seaweed, buckets, slow_proxy, prefect_api, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = source_data(c, src)
    manifest = write_manifest(manifest_text(src, dst), "ctrl-c.csv")
    command, env, first = start_transfer(manifest, seaweed, prefect_api, slow_proxy)
    os.killpg(first.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    out, err = first.communicate(timeout=60)

    assert first.returncode == 1, err[-3000:]
    assert "cancelled" in err and "Traceback" not in err + out
    files = artifacts(f"{artifact_base(manifest)}-files")[0]
    check_cancelled(c, src, dst, objects, table_rows(files))
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(files.flow_run_id).state.type == StateType.CANCELLED

    slow_proxy.faults = Faults()
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert listing(c, dst) == objects


def test_prefect_cancel_stops_an_s3flow_transfer_run_too(seaweed, buckets, slow_proxy, prefect_api,
                                                        write_manifest):
    """No worker signals a run of `s3flow transfer`: it sees its own state turn Cancelling."""
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = source_data(c, src)
    manifest = write_manifest(manifest_text(src, dst), "ui-cancel.csv")
    _, env, running = start_transfer(manifest, seaweed, prefect_api, slow_proxy)
    run_id = artifacts(f"{artifact_base(manifest)}-progress")[0].flow_run_id
    prefect_cli("flow-run", "cancel", str(run_id), env=env)
    out, err = running.communicate(timeout=90)

    assert running.returncode == 1 and "cancelled" in err and "Traceback" not in out + err
    assert final_state(run_id).type == StateType.CANCELLED
    files = artifacts(f"{artifact_base(manifest)}-files")[0]
    assert files.flow_run_id == run_id
    check_cancelled(c, src, dst, objects, table_rows(files))
