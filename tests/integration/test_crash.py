"""A crash leaves nothing behind: a transfer killed with SIGKILL while multipart copies are
in flight is resumed by the same command, which marks the dead run Crashed, aborts the
uploads it left open, and copies only what is missing. Uploads s3flow cannot attribute
are reported by `plan`/`verify` and aborted only by an age the user gives."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from datetime import UTC

from s3flow.flows.status import transfer_status
from tests.conftest import VENV_BIN, listing, run_cli
from tests.faultproxy import FaultProxy, Faults
from tests.integration.test_audit import reports
from tests.integration.test_cancel import manifest_text, source_data, wait_for_part_copies
from tests.integration.test_faults import fill
from tests.integration.test_status import running_transfer


def test_a_killed_transfer_leaves_no_open_upload_and_no_zombie_run(
        seaweed, prefect_server, prefect_api, buckets, write_manifest):
    from datetime import datetime

    src, dst, audit = buckets("src", "dst", "audit")
    c = seaweed.client()
    objects = source_data(c, src)  # 3 multipart objects of 5 parts, 200 small ones
    manifest = write_manifest(manifest_text(src, dst), "crash.csv")
    proxy = FaultProxy(seaweed.port, Faults(delay=0.05, slow=("cram/",), slow_delay=1.5)).start()
    try:
        env = {**os.environ, **seaweed.env(), **prefect_server.env(), "AWS_ENDPOINT_URL": proxy.url,
               "S3FLOW_REPORT_SECONDS": "2"}  # a long run's report rewrites, every 2 s here
        command = [str(VENV_BIN / "s3flow"), "transfer", manifest, "--multipart-threshold-mib", "5",
                   "--part-size-mib", "5", "--part-copies", "always", "--part-concurrency", "1",
                   "--concurrency", "4", "--json", "--report", f"s3://{audit}/reports/"]
        since = datetime.now(UTC)
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        killed_run = running_transfer(since)
        wait_for_part_copies(proxy, first)
        time.sleep(4)  # for the recorder to send what was decided, and the report to be rewritten
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        time.sleep(1)
        assert c.list_multipart_uploads(Bucket=dst).get("Uploads"), "the kill left no upload open"
        before = transfer_status(killed_run)
        assert before["state"] == "RUNNING"  # a SIGKILL leaves the run RUNNING...
        # ...and its completion report, as last rewritten: state running, and every file it
        # calls copied is at the destination.
        [(summary, rows, _)] = [r for folder, r in reports(c, audit).items() if killed_run in folder]
        assert summary["state"] == "running" and summary["files"] == len(rows) > 0
        copied = {row["destination"] for row in rows.to_dict("records") if row["status"] == "copied"}
        assert copied and all(c.head_object(Bucket=dst, Key=uri.split("/", 3)[3]) for uri in copied)

        proxy.faults = Faults()
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:
        proxy.stop()

    assert second.returncode == 0, second.stderr[-3000:]
    assert not c.list_multipart_uploads(Bucket=dst).get("Uploads")  # ...and the resume aborts what it left
    assert listing(c, dst) == objects
    resumer = json.loads(second.stdout)["flow_run_id"]
    after = transfer_status(killed_run)  # ...and marks it Crashed, naming the run that resumed it
    assert after["state"] == "CRASHED" and f"resumed by run {resumer}" in after["state_message"]
    assert after["files"] >= before["files"] and set(after["counts"]) <= {"copied"}
    done = run_cli(["status", killed_run], {**seaweed.env(), **prefect_server.env()})
    assert "CRASHED" in done.stdout and "resumed by run" in done.stdout
    finished = [r for folder, r in reports(c, audit).items() if resumer in folder]
    assert finished and finished[0][0]["state"] == "completed"


def test_open_uploads_are_reported_and_aborted_only_by_an_age_given(seaweed, buckets, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    c.put_object(Bucket=src, Key="runs/a.fq", Body=b"ACGT")
    stranger = c.create_multipart_upload(Bucket=dst, Key="runs/partial.bam")["UploadId"]
    c.upload_part(Bucket=dst, Key="runs/partial.bam", UploadId=stranger, PartNumber=1, Body=b"x" * 1000)
    manifest = write_manifest(f"s3://{src}/runs/,s3://{dst}/runs/\n", "open.csv")
    env = seaweed.env()

    plan = run_cli(["plan", manifest, "--json"], env)
    assert plan.returncode == 0, plan.stderr
    found = json.loads(plan.stdout)["incomplete_uploads"]
    assert (found["count"], found["bytes"]) == (1, 1000)
    assert found["examples"][0]["uri"] == f"s3://{dst}/runs/partial.bam"
    verify = run_cli(["verify", manifest], env)
    assert "incomplete uploads: 1 under the destinations, 1,000 bytes" in verify.stdout

    refused = run_cli(["uploads", f"s3://{dst}/runs/", "--abort"], env)
    assert refused.returncode == 2 and "--older-than" in refused.stderr
    young = run_cli(["uploads", f"s3://{dst}/runs/", "--abort", "--older-than", "1h"], env)
    assert young.returncode == 0 and "0 aborted" in young.stdout
    assert c.list_multipart_uploads(Bucket=dst).get("Uploads")  # younger than an hour: left alone
    time.sleep(2)
    old = run_cli(["uploads", f"s3://{dst}/runs/", "--abort", "--older-than", "1s"], env)
    assert old.returncode == 0 and "1 aborted" in old.stdout, old.stdout + old.stderr
    assert not c.list_multipart_uploads(Bucket=dst).get("Uploads")


def test_the_prefect_api_away_for_30_seconds_loses_no_file_result(seaweed, buckets, write_manifest, tmp_path):
    """The server stopped mid-transfer and started again 30 s later on the same port and
    database: the copies go on, the results decided meanwhile are sent when it is back,
    and the run ends normally."""
    from datetime import datetime

    from s3flow.local import PrefectServer

    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 1200)
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", "away.csv")
    server = PrefectServer(tmp_path / "prefect").start()
    proxy = FaultProxy(seaweed.port, Faults(delay=0.1)).start()  # about a minute of copying
    try:
        env = {**os.environ, **seaweed.env(), **server.env(), "AWS_ENDPOINT_URL": proxy.url}
        since = datetime.now(UTC)
        transfer = subprocess.Popen([str(VENV_BIN / "s3flow"), "transfer", manifest, "--concurrency", "2",
                                     "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with temporary_api(server):
            run_id = running_transfer(since)
        deadline = time.monotonic() + 60
        while len(listing(c, dst)) < 100 and time.monotonic() < deadline:
            time.sleep(0.5)
        server.stop()
        away_from = len(listing(c, dst))
        time.sleep(30)
        copied_while_away = len(listing(c, dst)) - away_from
        server = PrefectServer(server.home, port=server.port).start()
        out, err = transfer.communicate(timeout=300)
        assert transfer.returncode == 0, err[-3000:]
        assert copied_while_away > 0  # the copies went on
        with temporary_api(server):
            status = transfer_status(run_id)
    finally:
        proxy.stop()
        server.stop()
    assert json.loads(out)["flow_run_id"] == run_id and status["state"] == "COMPLETED"
    assert (status["files"], status["counts"]) == (len(objects), {"copied": len(objects)})
    assert listing(c, dst) == objects


@contextmanager
def temporary_api(server):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
