"""The replicate-object flow in this process, on moto's S3, SNS and SQS servers."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from s3flow.blocks.sns import SnsNotification
from s3flow.flows.replicate import replicate_object, replication_key
from tests.integration.test_transfer_flow import artifacts


@pytest.fixture()
def aws(moto_env, prefect_api):
    """Buckets, a topic and a queue subscribed to it, on moto; the AWS env points there."""
    import boto3

    url, s3 = moto_env
    tag = uuid.uuid4().hex[:6]
    names = {role: f"{role}-{tag}" for role in ("global-builds", "region-a", "region-b")}
    for name in names.values():
        s3.create_bucket(Bucket=name)
    sns = boto3.client("sns", endpoint_url=url, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
    topic = sns.create_topic(Name=f"s3flow-failures-{tag}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    block = f"failures-{tag}"
    SnsNotification(topic_arn=topic).save(block)

    def alerts() -> list[dict]:
        found = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in found]

    return {"s3": s3, "buckets": names, "block": block, "alerts": alerts, "topic": topic}


def test_object_arrives_in_every_destination_and_its_history_is_kept(aws, prefect_api):
    s3, b = aws["s3"], aws["buckets"]
    s3.put_object(Bucket=b["global-builds"], Key="builds/build 123.zip", Body=b"PK" + os.urandom(3000))

    result = replicate_object(b["global-builds"], "builds/build 123.zip", [b["region-a"], b["region-b"]],
                              notification_block=aws["block"])

    assert result["succeeded"] == result["total"] == 2 and result["failed_buckets"] == []
    source = s3.get_object(Bucket=b["global-builds"], Key="builds/build 123.zip")["Body"].read()
    for bucket in ("region-a", "region-b"):
        assert s3.get_object(Bucket=b[bucket], Key="builds/build 123.zip")["Body"].read() == source
    history = artifacts(replication_key(b["global-builds"], "builds/build 123.zip"))
    source_uri = f"s3://{b['global-builds']}/builds/build 123.zip"
    assert [a.description for a in history] == [  # newest first: the outcome, then the start
        f"Replication of {source_uri}: {source_uri}: 2 of 2 destinations succeeded, 0 failed",
        f"Replication of {source_uri} started"]
    assert aws["alerts"]() == []  # nothing failed, nothing sent

    again = replicate_object(b["global-builds"], "builds/build 123.zip", f"{b['region-a']},{b['region-b']}")
    assert again["succeeded"] == 2  # already there and identical: skipped, which is success


def test_a_missing_destination_fails_alone_and_is_notified(aws, prefect_api):
    s3, b = aws["s3"], aws["buckets"]
    s3.put_object(Bucket=b["global-builds"], Key="build-124.zip", Body=b"PK-124")
    missing = f"region-gone-{uuid.uuid4().hex[:6]}"

    state = replicate_object(b["global-builds"], "build-124.zip", [b["region-a"], missing],
                             notification_block=aws["block"], return_state=True)

    assert state.is_failed()
    assert f"1 of 2 copies failed: {missing}: NoSuchBucket" in state.message
    assert s3.get_object(Bucket=b["region-a"], Key="build-124.zip")["Body"].read() == b"PK-124"
    [alert] = aws["alerts"]()
    assert alert["Subject"].startswith("[FAILED] replicate-object: 1 of 2 copies of")
    body = alert["Message"]
    assert f"Source: s3://{b['global-builds']}/build-124.zip" in body
    assert f"  - {missing}: NoSuchBucket" in body and f"Succeeded: {b['region-a']}" in body
    assert str(state.state_details.flow_run_id) in body
    assert f"Artifact: {replication_key(b['global-builds'], 'build-124.zip')}" in body


def test_a_notification_that_cannot_be_sent_does_not_hide_the_failure(aws, prefect_api):
    s3, b = aws["s3"], aws["buckets"]
    s3.put_object(Bucket=b["global-builds"], Key="build-125.zip", Body=b"PK-125")
    broken = f"broken-{uuid.uuid4().hex[:6]}"
    SnsNotification(topic_arn="arn:aws:sns:us-east-1:123456789012:no-such-topic").save(broken)

    state = replicate_object(b["global-builds"], "build-125.zip", [b["region-a"], "region-gone-x1"],
                             notification_block=broken, return_state=True)

    assert state.is_failed()
    assert state.message.startswith("1 of 2 copies failed: region-gone-x1: NoSuchBucket")
    assert f"the failure notification through {broken!r} was not sent (3 tries)" in state.message


def test_invalid_request_fails_with_the_problems_named(aws, prefect_api):
    b = aws["buckets"]
    state = replicate_object(b["global-builds"], "", [b["global-builds"], "Bad_Bucket"], return_state=True)
    assert state.is_failed()
    assert "source_key: is empty" in state.message
    assert "destination_buckets[1]: 'Bad_Bucket'" in state.message


def test_transfer_manifest_notifies_its_top_failures(aws, prefect_api, tmp_path):
    from s3flow.flows.transfer import artifact_base, transfer_manifest

    s3, b = aws["s3"], aws["buckets"]
    s3.put_object(Bucket=b["global-builds"], Key="batch/ok.fq", Body=b"ACGT")
    manifest = tmp_path / "batch.csv"
    manifest.write_text(f"s3://{b['global-builds']}/batch/ok.fq,s3://{b['region-a']}/batch/ok.fq\n"
                        f"s3://{b['global-builds']}/batch/lost.fq,s3://{b['region-a']}/batch/lost.fq\n")

    state = transfer_manifest(manifest=str(manifest), notification_block=aws["block"], return_state=True)

    assert state.is_failed() and "1 of 2 files failed (NoSuchKey x1)" in state.message
    [alert] = aws["alerts"]()
    assert alert["Subject"] == "[FAILED] transfer-manifest: 1 of 2 files failed"
    body = alert["Message"]
    assert f"  - s3://{b['global-builds']}/batch/lost.fq -> s3://{b['region-a']}/batch/lost.fq: NoSuchKey" in body
    assert f"Manifest: {manifest}" in body and str(state.state_details.flow_run_id) in body
    assert f"Artifacts: {artifact_base(str(manifest))}-files" in body


def test_a_batch_of_objects_is_one_run_each_object_with_its_result_and_lag(aws, prefect_api):
    """replicate-objects: 120 objects of one batch event (one named twice, as a message
    delivered twice is) into two buckets, one of them missing: each object's copy fails
    or succeeds alone, nothing is copied twice, and every result has its lag."""
    from datetime import UTC, datetime

    from s3flow.flows.replicate import replicate_objects
    from s3flow.flows.status import transfer_status

    s3, b = aws["s3"], aws["buckets"]
    created = datetime.now(UTC).isoformat()
    objects = []
    for i in range(120):
        key = f"drop/release-7/file {i}.bin"
        s3.put_object(Bucket=b["global-builds"], Key=key, Body=os.urandom(100 + i))
        objects.append({"key": key, "version_id": None, "event_time": created})
    s3.copy_object(Bucket=b["region-a"], Key="drop/release-7/file 0.bin",  # already replicated
                   CopySource={"Bucket": b["global-builds"], "Key": "drop/release-7/file 0.bin"})
    missing = f"region-gone-{uuid.uuid4().hex[:6]}"

    state = replicate_objects(b["global-builds"], objects + objects[5:6], [b["region-a"], missing],
                              notification_block=aws["block"], return_state=True)

    assert state.is_failed()  # the missing bucket's copies failed
    result = state.result(raise_on_failure=False)
    assert (result["files"], result["copied"], result["skipped"], result["failed"]) == (240, 119, 1, 120)
    assert result["causes"][0]["error_code"] == "NoSuchBucket" and result["causes"][0]["bucket"] == missing
    assert result["lag"]["files"] == 120 and 0 <= result["lag"]["p50"] <= result["lag"]["p99"] < 300
    for i in (0, 5, 119):
        key = f"drop/release-7/file {i}.bin"
        assert s3.get_object(Bucket=b["region-a"], Key=key)["Body"].read() == \
            s3.get_object(Bucket=b["global-builds"], Key=key)["Body"].read()
    status = transfer_status(result["flow_run_id"])
    assert status["files"] == 240 and status["lag"]["files"] == 120
    assert {row["source"] for row in status["rows"]} == {f"s3://{b['global-builds']}/{o['key']}" for o in objects}
    [alert] = aws["alerts"]()
    assert alert["Subject"].startswith("[FAILED] replicate-objects: 120 of 240 files failed")
    assert f"NoSuchBucket x120 (destination bucket '{missing}')" in alert["Message"]
