"""`s3flow setup`: what a fresh Prefect server needs before `prefect deploy --all`.

Idempotent: whatever exists already is left as it is (and reported).
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from s3flow.flows.transfer import CONCURRENCY_LIMIT, ensure_concurrency_limit


def setup(
    pool: str = "s3flow",
    sns_topic_arn: str | None = None,
    sns_block: str = "s3flow-failures",
    sns_endpoint_url: str | None = None,
) -> list[str]:
    """Work pool, concurrency limit, block types (and an SNS block if a topic is given);
    one line per thing done or found."""
    done = [_work_pool(pool)]
    done.append(f"global concurrency limit {CONCURRENCY_LIMIT!r}: {ensure_concurrency_limit(CONCURRENCY_LIMIT)} slots")
    done.extend(_automations())
    from prefect_aws import AwsCredentials

    from s3flow.blocks.sns import SnsNotification

    for block_type in (SnsNotification, AwsCredentials):
        block_type.register_type_and_schema()
        done.append(f"block type {block_type.get_block_type_slug()!r}: registered")
    if sns_topic_arn:
        SnsNotification(topic_arn=sns_topic_arn, endpoint_url=sns_endpoint_url).save(sns_block, overwrite=True)
        done.append(f"SnsNotification block {sns_block!r}: publishes to {sns_topic_arn}")
    return done


# Our flows send a heartbeat every HEARTBEAT_SECONDS (s3flow sets
# PREFECT_FLOWS_HEARTBEAT_FREQUENCY for its runs: the CLI, and prefect.yaml's job
# variables); three missed ones and the run's process is taken for dead.
HEARTBEAT_SECONDS = 30
DEAD_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)
OUR_FLOWS = ["transfer-manifest", "transfer-shard", "replicate-object"]
RESUMED_FLOWS = ["transfer-manifest", "transfer-shard"]  # replicate-object is re-run by its event
CRASH_AUTOMATION = "s3flow: a run without heartbeats has crashed"
RESUME_AUTOMATION = "s3flow: resume a crashed transfer"


def _automations() -> list[str]:
    """The two automations of crash hygiene (README, "what happens when things go wrong"):

    | automation        | fires when                                        | does                    |
    |-------------------|---------------------------------------------------|-------------------------|
    | CRASH_AUTOMATION  | a run of OUR_FLOWS sent a heartbeat, then neither  | sets it Crashed, so it holds no concurrency slot and shows what happened |
    |                   | another nor a final state within DEAD_AFTER       |                         |
    | RESUME_AUTOMATION | a deployment run of RESUMED_FLOWS became Crashed   | sets it Scheduled again: a worker runs it with the same parameters, and it resumes (nothing finished is copied again); the flow gives up after `max_resumes` |
    """
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    flows_spec = {"prefect.resource.role": "flow", "prefect.resource.name": OUR_FLOWS}
    wanted = {
        CRASH_AUTOMATION: AutomationCore(
            name=CRASH_AUTOMATION,
            description="Marks s3flow runs whose process died as Crashed.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=flows_spec,
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                    "prefect.flow-run.Cancelling",
                },
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=DEAD_AFTER,
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"no heartbeat for {DEAD_AFTER.seconds} s: the run's process died (machine lost, "
                    "out of memory, killed)",
                )
            ],
        ),
        RESUME_AUTOMATION: AutomationCore(
            name=RESUME_AUTOMATION,
            description="Runs a crashed s3flow transfer again, where it stopped.",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=[
                    {"prefect.resource.role": "flow", "prefect.resource.name": RESUMED_FLOWS},
                    {"prefect.resource.role": "deployment"},
                ],
                expect={"prefect.flow-run.Crashed"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.SCHEDULED,
                    message="crashed: scheduled again to resume where it stopped (s3flow setup's automation)",
                )
            ],
        ),
    }
    done = []
    with get_client(sync_client=True) as client:
        for name, automation in wanted.items():
            for old in client.read_automations_by_name(name):  # an older s3flow's version
                client.delete_automation(old.id)
            client.create_automation(automation)
            done.append(f"automation {name!r}: installed")
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
            client.create_work_pool(
                WorkPoolCreate(
                    name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
        except ObjectAlreadyExists:
            return f"work pool {name!r}: exists"
    return f"work pool {name!r}: created (process; start a worker: prefect worker start --pool {name})"
