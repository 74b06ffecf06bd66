"""Event-driven replication end to end, every part real and on loopback:

moto's S3 sends object-created notifications to an SQS queue; `s3flow bridge sqs`
turns them into Prefect events; the triggers of prefect.yaml's deployments (set up
with `s3flow setup` and `prefect deploy --all`) start runs on a process worker; a
failed copy is published to moto's SNS, read back from a queue subscribed to it.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import boto3
import pytest

from tests.conftest import MOTO_CREDENTIALS, VENV_BIN, run_cli
from tests.integration.conftest import stop
from tests.integration.test_transfer_flow import artifacts

WAIT = 150  # seconds: event -> flow run -> worker -> flow process (6-18 s) plus the copy


def eventually(check, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture()
def stack(moto, prefect_api, start_worker, tmp_path):
    url, s3 = moto
    tag = uuid.uuid4().hex[:6]
    names = {role: f"{role}-{tag}" for role in (
        "global-builds", "region-a-builds", "region-b-builds", "genomics-inbox", "seq-raw", "seq-archive")}
    for name in names.values():
        s3.create_bucket(Bucket=name)
    sqs = boto3.client("sqs", endpoint_url=url, **_region())
    sns = boto3.client("sns", endpoint_url=url, **_region())
    events_queue = sqs.create_queue(QueueName=f"s3-events-{tag}")["QueueUrl"]
    for bucket in (names["global-builds"], names["genomics-inbox"]):
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": _arn(sqs, events_queue), "Events": ["s3:ObjectCreated:*"]}]})
    topic = sns.create_topic(Name=f"s3flow-failures-{tag}")["TopicArn"]
    alerts_queue = sqs.create_queue(QueueName=f"alerts-{tag}")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_arn(sqs, alerts_queue))

    aws_env = {"AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS}
    setup = run_cli(["setup", "--sns-topic-arn", topic, "--sns-block", f"failures-{tag}"],
                    {**aws_env, **prefect_api.env()})
    assert setup.returncode == 0, setup.stderr[-2000:]
    assert "block type 'sns-notification': registered" in setup.stdout
    start_worker({**aws_env,
                  "S3FLOW_WATCHED_BUCKET": names["global-builds"],
                  "S3FLOW_REPLICA_BUCKETS": f"{names['region-a-builds']},{names['region-b-builds']}",
                  "S3FLOW_NOTIFICATION_BLOCK": f"failures-{tag}",
                  "S3FLOW_MANIFEST_BUCKET": names["genomics-inbox"],
                  "S3FLOW_MANIFEST_PREFIX": "input/s3_batch_sync_input-"})
    log = (tmp_path / "bridge.log").open("wb")
    bridge = subprocess.Popen(
        [str(VENV_BIN / "s3flow"), "bridge", "sqs", "--queue-url", events_queue, "--wait-seconds", "1"],
        env={**os.environ, **aws_env, **prefect_api.env()}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)

    def alerts() -> list[dict]:
        found = sqs.receive_message(QueueUrl=alerts_queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in found]

    yield {"s3": s3, "sqs": sqs, "events_queue": events_queue, "names": names, "alerts": alerts,
           "bridge_log": tmp_path / "bridge.log", "url": url,
           "prefect_env": prefect_api.env()}
    stop(bridge)


def _region() -> dict:
    return {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _arn(sqs, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _body(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def test_uploads_replicate_fail_loudly_and_manifests_start_transfers(stack):
    s3, n = stack["s3"], stack["names"]

    # 1. A build lands in global-builds: it appears in both regional buckets.
    key = "builds/build 123.zip"  # S3 sends it as builds/build+123.zip
    build = b"PK" + os.urandom(4096)
    s3.put_object(Bucket=n["global-builds"], Key=key, Body=build)
    eventually(lambda: all(_body(s3, n[b], key) == build for b in ("region-a-builds", "region-b-builds")),
               "the build in both regional buckets")
    summary = eventually(lambda: artifacts(f"replicate-{n['global-builds']}-summary"),
                         "the replication run's summary", timeout=30)
    assert summary[0].flow_run_id is not None and "Replication lag, event to copy" in summary[0].data
    assert "s3:TestEvent" in stack["bridge_log"].read_text()  # sent when notifications were set up

    # 2. A regional bucket is gone: the other copy still happens, and SNS says which failed.
    s3.delete_object(Bucket=n["region-b-builds"], Key=key)
    s3.delete_bucket(Bucket=n["region-b-builds"])
    s3.put_object(Bucket=n["global-builds"], Key="builds/build-124.zip", Body=b"PK-124")
    [alert] = eventually(stack["alerts"], "the failure notification")
    assert alert["Subject"].startswith("[FAILED] replicate-objects: 1 of 2 files failed"), alert["Subject"]
    assert (f"  - s3://{n['global-builds']}/builds/build-124.zip -> s3://{n['region-b-builds']}/"
            "builds/build-124.zip: NoSuchBucket") in alert["Message"], alert["Message"]
    assert "Flow run: " in alert["Message"] and "every file: s3flow status" in alert["Message"]
    assert _body(s3, n["region-a-builds"], "builds/build-124.zip") == b"PK-124"

    # 3. A manifest dropped into the inbox prefix starts the bulk transfer it describes.
    reads = {f"batch-7/sample-{i}.fq.gz": os.urandom(2000 + i) for i in range(5)}
    for read_key, data in reads.items():
        s3.put_object(Bucket=n["seq-raw"], Key=read_key, Body=data)
    s3.put_object(Bucket=n["genomics-inbox"], Key="input/s3_batch_sync_input-7.csv",
                  Body=f"s3://{n['seq-raw']}/batch-7/,s3://{n['seq-archive']}/batch-7/\n".encode())
    eventually(lambda: all(_body(s3, n["seq-archive"], k) == v for k, v in reads.items()),
               "the manifest's objects in the archive bucket")

    # 4. Each object's history says what started the run that copied it.
    env = {"AWS_ENDPOINT_URL": stack["url"], **MOTO_CREDENTIALS, **stack["prefect_env"]}
    def history(uri: str) -> list[tuple[str, str]]:
        done = run_cli(["history", uri, "--json"], env)
        return [(e["status"], e["trigger"]) for e in json.loads(done.stdout)]

    replica = f"s3://{n['region-a-builds']}/{key}"
    assert eventually(lambda: history(replica), "the replica's history", 30) == [("copied", "s3 event")]
    archived = f"s3://{n['seq-archive']}/batch-7/sample-0.fq.gz"
    assert eventually(lambda: history(archived), "the archived object's history", 30) == [
        ("copied", f"manifest upload: s3://{n['genomics-inbox']}/input/s3_batch_sync_input-7.csv")]

    # 5. The AWS Batch bulk-sync seed's trigger: an EventBridge rule on the CloudTrail record
    # of the manifest's upload (S3's own notifications off for the inbox, so only it remains).
    s3.put_bucket_notification_configuration(Bucket=n["genomics-inbox"], NotificationConfiguration={})
    more = {f"batch-8/sample {i}.fq.gz": os.urandom(1000 + i) for i in range(3)}
    for read_key, data in more.items():
        s3.put_object(Bucket=n["seq-raw"], Key=read_key, Body=data)
    manifest_key = "input/s3_batch_sync_input-8 final.csv"  # CloudTrail keeps the space as it is
    s3.put_object(Bucket=n["genomics-inbox"], Key=manifest_key,
                  Body=f"s3://{n['seq-raw']}/batch-8/,s3://{n['seq-archive']}/batch-8/\n".encode())
    trail = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
             "source": "aws.s3", "time": "2026-11-30T10:00:05Z", "region": "us-east-1",
             "detail": {"eventSource": "s3.amazonaws.com", "eventName": "PutObject",
                        "eventTime": "2026-11-30T10:00:04Z", "eventID": str(uuid.uuid4()),
                        "requestParameters": {"bucketName": n["genomics-inbox"], "key": manifest_key},
                        "responseElements": None}}
    stack["sqs"].send_message(QueueUrl=stack["events_queue"], MessageBody=json.dumps(trail))
    eventually(lambda: all(_body(s3, n["seq-archive"], k) == v for k, v in more.items()),
               "the CloudTrail-triggered manifest's objects in the archive bucket")
