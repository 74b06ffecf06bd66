"""`s3flow setup`: what a fresh Prefect server needs before `prefect deploy --all`.

Idempotent: whatever exists already is left as it is (and reported).
"""
from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from flows.transfer import CONCURRENCY_LIMIT, ensure_concurrency_limit


def setup(pool: str = "s3flow", sns_topic_arn: str | None = None, sns_block: str = "s3flow-failures",
          sns_endpoint_url: str | None = None) -> list[str]:
    """Work pool, concurrency limit, block types (and an SNS block if a topic is given);
    one line per thing done or found."""
    done = [_work_pool(pool)]
    done.append(f"global concurrency limit {CONCURRENCY_LIMIT!r}: {ensure_concurrency_limit(CONCURRENCY_LIMIT)} slots")
    from prefect_aws import AwsCredentials

    from blocks.sns import SnsNotification

    for block_type in (SnsNotification, AwsCredentials):
        block_type.register_type_and_schema()
        done.append(f"block type {block_type.get_block_type_slug()!r}: registered")
    if sns_topic_arn:
        SnsNotification(topic_arn=sns_topic_arn, endpoint_url=sns_endpoint_url).save(sns_block, overwrite=True)
        done.append(f"SnsNotification block {sns_block!r}: publishes to {sns_topic_arn}")
    return done


def _work_pool(name: str) -> str:
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(name)
            return f"work pool {name!r}: exists ({found.type})"
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(WorkPoolCreate(
                name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:
            return f"work pool {name!r}: exists"
    return f"work pool {name!r}: created (process; start a worker: prefect worker start --pool {name})"
