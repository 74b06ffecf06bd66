"""The event path on a production-shaped Prefect server: PostgreSQL (Debian's package,
started by s3flow.local.PostgresServer), with a burst of uploads, a message delivered
twice, and the AWS Batch seed's CloudTrail trigger. Every part real and on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from s3flow.local import PostgresServer, PrefectServer
from tests.conftest import MOTO_CREDENTIALS, VENV_BIN, run_cli
from tests.integration.conftest import prefect_cli, stop
from tests.integration.test_events_e2e import _arn, _body, _region, eventually

BURST = 200


@pytest.fixture()
def postgres_prefect():
    home = Path(tempfile.mkdtemp(prefix="s3flow-postgres-test-"))
    with PostgresServer(home / "postgres") as database, PrefectServer(home / "prefect",
                                                                      database_url=database.url) as server:
        yield server


def test_burst_duplicate_and_cloudtrail_on_a_postgresql_prefect_server(postgres_prefect, moto, tmp_path):
    url, s3 = moto
    tag = uuid.uuid4().hex[:6]
    names = {role: f"{role}-{tag}" for role in ("builds", "region-a", "region-b", "inbox", "raw", "archive")}
    for name in names.values():
        s3.create_bucket(Bucket=name)
    sqs = boto3.client("sqs", endpoint_url=url, **_region())
    queue = sqs.create_queue(QueueName=f"pg-events-{tag}")["QueueUrl"]
    s3.put_bucket_notification_configuration(Bucket=names["builds"], NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": _arn(sqs, queue), "Events": ["s3:ObjectCreated:*"]}]})
    env = {**os.environ, "AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS, **postgres_prefect.env(),
           "PREFECT_WORKER_QUERY_SECONDS": "1",
           "S3FLOW_WATCHED_BUCKET": names["builds"],
           "S3FLOW_REPLICA_BUCKETS": f"{names['region-a']},{names['region-b']}",
           "S3FLOW_MANIFEST_BUCKET": names["inbox"], "S3FLOW_MANIFEST_PREFIX": "input/s3_batch_sync_input-"}
    assert run_cli(["setup"], env).returncode == 0
    prefect_cli("work-pool", "create", "s3flow", "--type", "process", "--overwrite", env=env)
    prefect_cli("deploy", "--all", env=env)
    procs = [
        subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "s3flow"], env=env,
                         cwd=Path(__file__).resolve().parents[2], stdout=(tmp_path / "worker.log").open("wb"),
                         stderr=subprocess.STDOUT, start_new_session=True),
        subprocess.Popen([str(VENV_BIN / "s3flow"), "bridge", "sqs", "--queue-url", queue, "--wait-seconds", "1"],
                         env=env, stdout=(tmp_path / "bridge.log").open("wb"), stderr=subprocess.STDOUT,
                         start_new_session=True),
    ]
    try:
        # A build drop: every object arrives in both replica buckets (a few runs, not 200).
        keys = [f"release-9/part-{i:03d}.bin" for i in range(BURST)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=names["builds"], Key=key, Body=key.encode()), keys))

        def arrived() -> bool:
            return all(_body(s3, names[b], k) == k.encode() for b in ("region-a", "region-b") for k in keys)

        eventually(arrived, f"all {2 * BURST} replicas")

        # A notification for an object already replicated, delivered twice (SQS, SNS and
        # EventBridge retry): the second is dropped by the bridge; the first finds the
        # replicas identical and copies nothing.
        record = {"eventName": "ObjectCreated:Put", "eventTime": "2026-11-30T10:00:00.000Z", "s3": {
            "bucket": {"name": names["builds"]}, "object": {"key": "release-9/part-000.bin", "size": 22,
                                                             "eTag": "x", "sequencer": "0001"}}}
        for _ in range(2):
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [record]}))
        eventually(lambda: "already delivered" in (tmp_path / "bridge.log").read_text(),
                   "the duplicate dropped by the bridge")

        # The AWS Batch seed's trigger: the CloudTrail record of a manifest upload.
        s3.put_object(Bucket=names["raw"], Key="batch-3/s.fq.gz", Body=b"@r1\nACGT\n")
        manifest = "input/s3_batch_sync_input-3.csv"
        s3.put_object(Bucket=names["inbox"], Key=manifest,
                      Body=f"s3://{names['raw']}/batch-3/,s3://{names['archive']}/batch-3/\n".encode())
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3", "time": "2026-11-30T10:00:05Z",
            "detail": {"eventSource": "s3.amazonaws.com", "eventName": "PutObject",
                       "eventTime": "2026-11-30T10:00:04Z", "eventID": str(uuid.uuid4()),
                       "requestParameters": {"bucketName": names["inbox"], "key": manifest}}}))
        eventually(lambda: _body(s3, names["archive"], "batch-3/s.fq.gz") == b"@r1\nACGT\n",
                   "the manifest's object in the archive")

        # Each replica copied once, its history from the server on PostgreSQL.
        def statuses() -> list[str]:
            done = run_cli(["history", f"s3://{names['region-a']}/release-9/part-000.bin", "--json"], env)
            return [e["status"] for e in json.loads(done.stdout or "[]")]

        assert sorted(eventually(lambda: statuses() if len(statuses()) == 2 else None, "both runs' records")) == [
            "copied", "skipped"]
    finally:
        for proc in procs:
            stop(proc)
