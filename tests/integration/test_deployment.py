"""prefect.yaml's deployment, run by a real process worker from a work pool."""
from __future__ import annotations

import os

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from s3flow.flows.transfer import artifact_base
from tests.conftest import listing


def test_deployment_runs_on_the_work_pool(worker, seaweed, buckets):
    src, dst, manifests = buckets("src", "dst", "manifests")
    c = seaweed.client()
    for i in range(25):
        c.put_object(Bucket=src, Key=f"artifacts/build-123/part-{i}", Body=os.urandom(500))
    manifest = f"s3://{manifests}/batches/build-123.csv"
    c.put_object(Bucket=manifests, Key="batches/build-123.csv",
                 Body=f"s3://{src}/artifacts/build-123/,s3://{dst}/builds/123/\n".encode())

    run = run_deployment("transfer-manifest/manual", parameters={"manifest": manifest}, timeout=240)

    assert run.state.is_completed(), run.state
    assert listing(c, dst, "builds/123/") == {
        f"builds/123/{k.rsplit('/', 1)[-1]}": v for k, v in listing(c, src, "artifacts/").items()}
    with get_client(sync_client=True) as client:
        found = client.read_flow_run(run.id)
    assert found.work_pool_name == "s3flow"
    from tests.integration.test_transfer_flow import artifacts, table_rows

    files = artifacts(f"{artifact_base(manifest)}-files")[0]
    assert files.flow_run_id == run.id
    assert {row["status"] for row in table_rows(files)} == {"copied"}
    assert {row["trigger"] for row in table_rows(files)} == {"manual: deployment run"}
