"""prefect.yaml's scheduled-sync: a scheduled run picked up by a real worker, and a
second run of the same sync that waits for it instead of copying the same objects."""
from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.deployments import run_deployment

from s3flow.flows.transfer import artifact_base
from tests.conftest import listing
from tests.faultproxy import FaultProxy, Faults
from tests.integration.test_faults import fill
from tests.integration.test_transfer_flow import artifacts, table_rows


def test_scheduled_run_syncs_and_an_overlapping_run_waits(start_worker, seaweed, buckets):
    src, dst, config = buckets("seq-drop", "lab", "config")
    c = seaweed.client()
    objects = fill(c, src, 200, "drop/")
    manifest = f"s3://{config}/nightly-sync.csv"
    c.put_object(Bucket=config, Key="nightly-sync.csv", Body=f"s3://{src}/drop/,s3://{dst}/drop/\n".encode())
    proxy = FaultProxy(seaweed.port, Faults(delay=0.2)).start()  # a run takes about 20 s
    try:
        start_worker({**seaweed.env(), "AWS_ENDPOINT_URL": proxy.url, "S3FLOW_SYNC_MANIFEST": manifest})
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("transfer-manifest/scheduled-sync")
            assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == \
                [("0 2 * * *", "Europe/London")]

            def runs():
                return client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])))

            def wait_for(check, what, timeout=150):
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if found := check():
                        return found
                    time.sleep(0.5)
                raise AssertionError(f"{what}: {[(r.name, r.state_name) for r in runs()]}")

            # A short interval schedule, as a user adds one (`prefect deployment schedule
            # create ... --interval 4`); the server's scheduler makes the run.
            [every_4s] = client.create_deployment_schedules(deployment.id, [(IntervalSchedule(
                interval=timedelta(seconds=4), anchor_date=datetime.now(UTC)), True)],
                parameters={"max_concurrency": 2}, max_scheduled_runs=1)
            [first] = wait_for(lambda: [r for r in runs() if r.state.is_running()], "a scheduled run running")
            client.delete_deployment_schedule(deployment.id, every_4s.id)
            for run in runs():  # leave no other due run for later tests' workers
                if run.id != first.id and not run.state.is_final():
                    client.delete_flow_run(run.id)
            # The same sync started again while the scheduled one runs.
            second = run_deployment("transfer-manifest/scheduled-sync", timeout=0)
            wait_for(lambda: all(client.read_flow_run(r).state.is_final() for r in (first.id, second.id)),
                     "both runs finished", timeout=240)
            first, second = client.read_flow_run(first.id), client.read_flow_run(second.id)
            second_states = [s.name for s in client.read_flow_run_states(second.id)]
    finally:
        proxy.stop()

    assert first.state.is_completed() and second.state.is_completed(), (first.state, second.state)
    assert first.auto_scheduled
    assert "AwaitingConcurrencySlot" in second_states  # it waited for the first
    assert second.start_time >= first.end_time
    assert listing(c, dst) == objects
    copies = Counter(s.key for s in proxy.seen if s.copy_source and not s.fault)
    assert set(copies.values()) == {1}  # no object copied twice
    by_run = {a.flow_run_id: table_rows(a) for a in artifacts(f"{artifact_base(manifest)}-files")}
    assert {(row["status"], row["trigger"]) for row in by_run[first.id]} == {("copied", "schedule")}
    assert {(row["status"], row["trigger"]) for row in by_run[second.id]} == {
        ("skipped", "manual: deployment run")}
