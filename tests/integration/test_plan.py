"""`s3flow plan` and `transfer --dry-run`: everything decided, nothing changed."""
from __future__ import annotations

import json
import os

import pytest

from s3flow.cli import main
from s3flow.flows.transfer import artifact_base
from tests.conftest import listing, put_multipart

MiB = 1024 * 1024


@pytest.fixture()
def run(prefect_api, s3_env, capsys):
    def call(*args: str):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, (json.loads(out) if "--json" in args else out), err

    return call


@pytest.fixture()
def scene(seaweed, buckets, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for i in range(5):
        c.put_object(Bucket=src, Key=f"run/r{i}.fq", Body=os.urandom(1000))
    put_multipart(c, src, "run/big.bam", os.urandom(12 * MiB), 5 * MiB)  # copied in its 3 parts
    c.put_object(Bucket=dst, Key="run/r0.fq", Body=c.get_object(Bucket=src, Key="run/r0.fq")["Body"].read())
    c.put_object(Bucket=dst, Key="run/stale.fq", Body=b"old")
    c.put_object(Bucket=src, Key="one/report.pdf", Body=b"pdf")
    manifest = write_manifest(f"s3://{src}/run/,s3://{dst}/run/\n"
                              f"s3://{src}/one/report.pdf,s3://{dst}/reports/\n"
                              f"s3://{src}/one/missing.pdf,s3://{dst}/reports/\n")
    return src, dst, manifest


def test_plan_reports_everything_and_changes_nothing(seaweed, scene, run):
    src, dst, manifest = scene
    before = listing(seaweed.client(), dst)

    code, plan, err = run("plan", manifest, "--json", "--delete", "--multipart-threshold-mib", "5",
                          "--part-size-mib", "5", "--part-copies", "always")

    assert code == 1, err  # one source is missing: the plan says the transfer would fail
    assert (plan["copy"]["objects"], plan["copy"]["bytes"]) == (6, 4 * 1000 + 12 * MiB + 3)
    assert (plan["skip"]["objects"], plan["delete"]["objects"]) == (1, 1)
    assert plan["delete"]["examples"] == [f"s3://{dst}/run/stale.fq"]
    assert plan["failed"]["errors"] == {"NoSuchKey": 1}
    assert plan["requests"] == {"list": 2, "head": 5, "get_tagging": 1, "copy_object": 5, "multipart": 2,
                                "upload_part_copy": 3, "delete": 1, "total": 19}
    assert plan["busiest_prefixes"]["source"][0] == {"prefix": f"s3://{src}/run/", "requests": 7}
    assert plan["cost_usd"]["total"] > 0
    assert listing(seaweed.client(), dst) == before
    assert not seaweed.client().list_multipart_uploads(Bucket=dst).get("Uploads")

    # By default, on a store other than AWS, the multipart source is planned as one CopyObject.
    code, plan, err = run("plan", manifest, "--json", "--delete", "--multipart-threshold-mib", "5")
    assert (plan["requests"]["copy_object"], plan["requests"]["upload_part_copy"]) == (6, 0), err

    code, text, _ = run("plan", manifest)
    assert "copy" in text and "estimated cost $" in text and "would fail: NoSuchKey x1" in text


def test_transfer_dry_run_records_the_plan_as_an_artifact(seaweed, scene, run):
    from tests.integration.test_transfer_flow import artifacts

    src, dst, manifest = scene
    before = listing(seaweed.client(), dst)
    code, plan, _ = run("transfer", manifest, "--dry-run", "--json", "--delete")
    assert code == 1 and plan["copy"]["objects"] == 6 and plan["delete"]["objects"] == 1
    assert listing(seaweed.client(), dst) == before
    base = artifact_base(manifest)
    markdown = artifacts(f"{base}-plan")[0].data
    assert "| copy | 6 |" in markdown and "Estimated cost" in markdown
    assert not artifacts(f"{base}-files")  # a dry run adds nothing to the transfer's history


def test_archived_objects_are_reported_not_copied(moto_env, prefect_api, tmp_path, capsys):
    url, c = moto_env
    c.create_bucket(Bucket="cold-src")
    c.create_bucket(Bucket="cold-dst")
    c.put_object(Bucket="cold-src", Key="old/run1.bam", Body=b"a" * 10, StorageClass="DEEP_ARCHIVE")
    c.put_object(Bucket="cold-src", Key="old/run2.bam", Body=b"b" * 20, StorageClass="GLACIER")
    c.put_object(Bucket="cold-src", Key="old/notes.txt", Body=b"warm")
    c.restore_object(Bucket="cold-src", Key="old/run2.bam", RestoreRequest={"Days": 1})
    manifest = tmp_path / "cold.csv"
    manifest.write_text("s3://cold-src/old/,s3://cold-dst/old/\n")

    assert main(["plan", str(manifest), "--json"]) == 1
    plan = json.loads(capsys.readouterr().out)
    assert plan["needs_restore"]["examples"] == ["s3://cold-src/old/run1.bam"]
    assert plan["copy"]["objects"] == 2  # notes.txt, and run2.bam whose restore finished

    assert main(["transfer", str(manifest), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["copied"] == 2
    assert summary["failures"][0]["error"].startswith("InvalidObjectState: the source is in DEEP_ARCHIVE")
    assert set(listing(c, "cold-dst")) == {"old/notes.txt", "old/run2.bam"}


def test_filters_choose_what_is_copied_and_protect_excluded_objects_from_delete(
        seaweed, buckets, run, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for key in ("s1/a.bam", "s1/a.bam.bai", "s1/tmp/x.tmp", "s2/b.bam", "notes.txt"):
        c.put_object(Bucket=src, Key=f"batch/{key}", Body=key.encode())
    c.put_object(Bucket=dst, Key="batch/old.bam", Body=b"gone from source")
    c.put_object(Bucket=dst, Key="batch/keep-me.txt", Body=b"excluded: never deleted")
    manifest = write_manifest(f"s3://{src}/batch/,s3://{dst}/batch/\n")

    code, summary, err = run("transfer", manifest, "--json", "--delete", "--exclude", "*",
                             "--include", "*.bam", "--include", "*.bai")

    assert code == 0, err
    assert (summary["copied"], summary["deleted"]) == (3, 1)
    code, plan, _ = run("plan", manifest, "--json", "--exclude", "*", "--include", "*.bam")
    assert (plan["copy"]["objects"], plan["skip"]["objects"], plan["excluded_by_filters"]) == (0, 2, 3)
    assert set(listing(c, dst)) == {"batch/s1/a.bam", "batch/s1/a.bam.bai", "batch/s2/b.bam",
                                     "batch/keep-me.txt"}


def test_verify_reports_every_difference_and_copies_nothing(seaweed, buckets, run, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for key in ("same", "changed", "missing"):
        c.put_object(Bucket=src, Key=f"v/{key}", Body=f"source {key}".encode())
    c.put_object(Bucket=dst, Key="v/same", Body=b"source same")
    c.put_object(Bucket=dst, Key="v/changed", Body=b"other bytes, other size")
    c.put_object(Bucket=dst, Key="v/extra", Body=b"only here")
    manifest = write_manifest(f"s3://{src}/v/,s3://{dst}/v/\ns3://{src}/gone,s3://{dst}/gone\n")
    before = listing(c, dst)

    code, report, _ = run("verify", manifest, "--json", "--delete")

    assert code == 1
    assert (report["files"], report["identical"]) == (5, 1)
    why = {(d["destination"], d["status"]): d["why"] for d in report["differences"]}
    assert why == {(f"s3://{dst}/v/changed", "would-copy"): "size differs",
                   (f"s3://{dst}/v/missing", "would-copy"): "new",
                   (f"s3://{dst}/v/extra", "would-delete"): "not in the source",
                   (f"s3://{dst}/gone", "failed"): f"NoSuchKey: the source object s3://{src}/gone does not exist"}
    assert listing(c, dst) == before

    c.put_object(Bucket=dst, Key="v/changed", Body=b"source changed")
    c.put_object(Bucket=dst, Key="v/missing", Body=b"source missing")
    code, text, _ = run("verify", f"{manifest}")
    assert code == 1 and "1 differ" in text  # only the missing source is left
    only_prefix = write_manifest(f"s3://{src}/v/,s3://{dst}/v/\n", "prefix.csv")
    code, text, _ = run("verify", only_prefix)
    assert code == 0 and "3 identical, 0 differ" in text
