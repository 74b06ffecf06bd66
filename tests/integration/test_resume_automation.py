"""Worker and flow process killed together (a lost machine): `s3flow setup`'s automations
mark the run Crashed (no heartbeat for 90 s) and schedule it again; it resumes where it
stopped on another worker, and the next run of the nightly sync (a deployment with a
concurrency limit of 1) is not blocked by the dead one."""
from __future__ import annotations

import os
import signal
import time

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from tests.conftest import listing, run_cli
from tests.faultproxy import FaultProxy, Faults
from tests.integration.test_faults import fill

# The automation fires 90 s after the last heartbeat (one every 30 s): within 90 s of the
# kill, plus the server's trigger evaluation and a loaded machine's slack.
CRASHED_WITHIN = 180


def test_a_lost_machine_is_marked_crashed_resumed_and_blocks_no_later_run(start_worker, seaweed, buckets,
                                                                         prefect_api):
    src, dst, config = buckets("seq-drop", "lab", "config")
    c = seaweed.client()
    objects = fill(c, src, 300, "drop/")
    manifest = f"s3://{config}/nightly-sync.csv"
    c.put_object(Bucket=config, Key="nightly-sync.csv", Body=f"s3://{src}/drop/,s3://{dst}/drop/\n".encode())
    setup = run_cli(["setup"], prefect_api.env())
    assert setup.returncode == 0 and "a run without heartbeats has crashed" in setup.stdout, setup.stderr
    proxy = FaultProxy(seaweed.port, Faults(delay=0.3)).start()  # a run takes about a minute
    env = {**seaweed.env(), "AWS_ENDPOINT_URL": proxy.url, "S3FLOW_SYNC_MANIFEST": manifest}
    try:
        lost = start_worker(env)
        with get_client(sync_client=True) as client:
            first = run_deployment("transfer-manifest/scheduled-sync", timeout=0,
                                   parameters={"max_concurrency": 2})
            deadline = time.monotonic() + 120
            while len(listing(c, dst)) < 20 and time.monotonic() < deadline:
                time.sleep(0.5)
            pid = int(client.read_flow_run(first.id).labels["s3flow.pid"])
            os.kill(pid, signal.SIGKILL)  # the flow's process and its worker, together
            os.killpg(lost.pid, signal.SIGKILL)
            lost.wait()
            killed_at = time.monotonic()
            assert client.read_flow_run(first.id).state.is_running()

            second = run_deployment("transfer-manifest/scheduled-sync", timeout=0,
                                    parameters={"max_concurrency": 2})  # the next night's run
            start_worker(env)  # another machine of the pool

            def state_names(run_id):
                return [s.type.value for s in client.read_flow_run_states(run_id)]

            crashed_after = None
            deadline = killed_at + CRASHED_WITHIN + 300
            while time.monotonic() < deadline:
                names = state_names(first.id)
                if crashed_after is None and "CRASHED" in names:
                    crashed_after = time.monotonic() - killed_at
                runs = [client.read_flow_run(r.id) for r in (first, second)]
                if all(run.state.is_final() for run in runs):
                    break
                time.sleep(2)
            first, second = [client.read_flow_run(r.id) for r in (first, second)]
            first_states = state_names(first.id)
    finally:
        proxy.stop()

    print(f"marked Crashed {crashed_after:.0f} s after the kill" if crashed_after else "never crashed")
    assert crashed_after is not None and crashed_after < CRASHED_WITHIN
    assert "SCHEDULED" in first_states[first_states.index("CRASHED"):], first_states  # resumed
    assert first.state.is_completed() and second.state.is_completed(), (first.state, second.state)
    assert second.start_time is not None  # not blocked for good by the dead run's slot
    assert listing(c, dst) == objects
    assert not c.list_multipart_uploads(Bucket=dst).get("Uploads")
