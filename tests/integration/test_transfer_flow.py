"""The transfer-manifest flow as the Prefect UI and API show it."""
from __future__ import annotations

import json

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from s3flow.cli import main
from s3flow.flows.transfer import CONCURRENCY_LIMIT, artifact_base, transfer_manifest
from tests.conftest import listing


def artifacts(key: str) -> list:
    """Every version of a keyed artifact, newest first."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return sorted(found, key=lambda a: a.created, reverse=True)


def table_rows(artifact) -> list[dict]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def test_artifacts_record_every_file_and_the_run_fails_when_a_file_fails(
        seaweed, buckets, prefect_api, s3_env, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for i in range(12):
        c.put_object(Bucket=src, Key=f"reads/{i:02d}.fq", Body=b"x" * (i + 1))
    manifest = write_manifest(
        f"s3://{src}/reads/,s3://{dst}/reads/\ns3://{src}/absent.fq,s3://{dst}/absent.fq\n",
        "batch-7.csv")

    state = transfer_manifest(manifest=manifest, batch_files=5, return_state=True)

    assert state.is_failed()
    assert "1 of 13 files failed (NoSuchKey x1)" in state.message
    result = state.result(raise_on_failure=False)
    assert (result["copied"], result["failed"], result["bytes_copied"]) == (12, 1, sum(range(1, 13)))
    base = artifact_base(manifest)
    assert base.startswith("transfer-batch-7-")
    rows = table_rows(artifacts(f"{base}-files")[0])
    assert len(rows) == 13
    by_source = {row["source"]: row for row in rows}
    failed = by_source[f"s3://{src}/absent.fq"]
    assert (failed["status"], failed["destination"]) == ("failed", f"s3://{dst}/absent.fq")
    assert failed["error"].startswith("NoSuchKey") and failed["line"] == 2
    copied = by_source[f"s3://{src}/reads/03.fq"]
    assert (copied["status"], copied["size"], copied["attempts"], copied["line"]) == ("copied", 4, 1, 1)
    assert copied["start"] <= copied["end"] and copied["seconds"] >= 0
    summary = artifacts(f"{base}-summary")[0].data
    assert "| Copied | 12 |" in summary and "| Failed | 1 |" in summary and "absent.fq" in summary
    progress = artifacts(f"{base}-progress")[0]
    assert progress.data == 100.0
    assert state.state_details.flow_run_id == artifacts(f"{base}-files")[0].flow_run_id


def test_runs_of_one_transfer_form_a_history(seaweed, buckets, prefect_api, s3_env, write_manifest):
    src, dst = buckets("src", "dst")
    seaweed.client().put_object(Bucket=src, Key="k", Body=b"1")
    manifest = write_manifest(f"s3://{src}/k,s3://{dst}/k\n", "history.csv")
    first = transfer_manifest(manifest=manifest, return_state=True)
    second = transfer_manifest(manifest=manifest, return_state=True)
    assert first.is_completed() and second.is_completed()
    versions = artifacts(f"{artifact_base(manifest)}-files")
    assert [table_rows(v)[0]["status"] for v in versions[:2]] == ["skipped", "copied"]
    assert {v.flow_run_id for v in versions[:2]} == {
        first.state_details.flow_run_id, second.state_details.flow_run_id}


def test_global_concurrency_limit_is_created_and_released(seaweed, buckets, prefect_api, s3_env,
                                                          write_manifest):
    src, dst = buckets("src", "dst")
    seaweed.client().put_object(Bucket=src, Key="k", Body=b"1")
    manifest = write_manifest(f"s3://{src}/k,s3://{dst}/k\n")
    name = f"{CONCURRENCY_LIMIT}-test"
    assert transfer_manifest(manifest=manifest, concurrency_limit=name, max_concurrency=300,
                             return_state=True).is_completed()
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert (limit.limit, limit.active_slots) == (256, 0)


def test_credentials_blocks_for_each_side(seaweed, buckets, prefect_api, write_manifest, monkeypatch,
                                          capsys):
    from prefect_aws import AwsCredentials

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    src, dst = buckets("src", "dst")
    seaweed.client().put_object(Bucket=src, Key="data/k", Body=b"payload")

    def block(name: str, secret: str) -> str:
        AwsCredentials(aws_access_key_id=seaweed.access_key, aws_secret_access_key=secret,
                       region_name="us-east-1",
                       aws_client_parameters={"endpoint_url": seaweed.endpoint_url}).save(name, overwrite=True)
        return name

    good = block("seaweed-good", seaweed.secret_key)
    wrong = block("seaweed-wrong-secret", "not-the-secret")
    manifest = write_manifest(f"s3://{src}/data/,s3://{dst}/data/\n")

    assert main(["transfer", manifest, "--json", "--source-credentials", good,
                 "--destination-credentials", good]) == 0
    assert json.loads(capsys.readouterr().out)["copied"] == 1
    assert listing(seaweed.client(), dst) == {"data/k": b"payload"}

    assert main(["transfer", manifest, "--json", "--source-credentials", wrong,
                 "--destination-credentials", good]) == 2
    err = capsys.readouterr().err
    assert f"the source credentials are not valid at {seaweed.endpoint_url}" in err
    assert "SignatureDoesNotMatch" in err and "Traceback" not in err

    assert main(["transfer", manifest, "--source-credentials", "no-such-block"]) == 2
    assert "no AwsCredentials block named 'no-such-block'" in capsys.readouterr().err
