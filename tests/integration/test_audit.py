"""Audit records that outlive Prefect, and checksums that prove each copy (issue 18).

Against SeaweedFS (the real S3 server) and moto (Object Lock, and a second opinion on
checksums), as a user runs the product: `s3flow transfer ... --report`, then the report
objects themselves, `s3flow history --reports` with an empty Prefect database, `verify`.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from s3flow.local import PrefectServer
from tests.conftest import MOTO_CREDENTIALS, put_multipart, run_cli

MiB = 1024 * 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reports(client, bucket: str, prefix: str = "reports/") -> dict[str, tuple[dict, pd.DataFrame, bytes]]:
    """Every report under a prefix: {run folder: (summary, rows, csv bytes)}."""
    found = {}
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", ())]
    for key in keys:
        if key.endswith("/summary.json"):
            folder = key.removesuffix("summary.json")
            summary = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            data = client.get_object(Bucket=bucket, Key=folder + "files.csv.gz")["Body"].read()
            rows = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype=str, keep_default_na=False)
            found[folder] = (summary, rows, data)
    return found


def by_destination(rows: pd.DataFrame) -> dict[str, dict]:
    return {row["destination"].rsplit("/", 1)[-1]: row for row in rows.to_dict("records")}


@pytest.fixture()
def env(seaweed, prefect_server):
    return {**seaweed.env(), **prefect_server.env()}


@pytest.fixture(params=["seaweed", "moto"])
def three_buckets(request, prefect_server):
    """(client, env, source, destination, audit bucket) on SeaweedFS and on moto."""
    if request.param == "seaweed":
        server = request.getfixturevalue("seaweed")
        client, env = server.client(), server.env()
        names = request.getfixturevalue("buckets")("src", "dst", "audit")
    else:
        url, client = request.getfixturevalue("moto")
        env = {"AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS}
        names = [f"{role}-{os.urandom(3).hex()}" for role in ("asrc", "adst", "audit")]
        for name in names:
            client.create_bucket(Bucket=name)
    return (client, {**env, **prefect_server.env()}, *names)


def test_report_proves_every_file_and_history_answers_from_reports_alone(three_buckets, tmp_path):
    """A sequencing batch with the provider's md5s: the report has one row per file with the
    evidence that proved it; a wrong md5 fails that file alone and writes nothing; years
    later (here: a Prefect server with an empty database) history answers from reports."""
    client, env, src, dst, audit = three_buckets
    single, big, bad = b"ACGT" * 50_000, os.urandom(11 * MiB + 3), b"corrupted in transit"
    client.put_object(Bucket=src, Key="run7/s1.fastq.gz", Body=single)
    put_multipart(client, src, "run7/s2.cram", big, 5 * MiB)  # its ETag is no MD5: the bytes are read
    client.put_object(Bucket=src, Key="run7/s3.fastq.gz", Body=bad)
    manifest = tmp_path / "batch.csv"
    manifest.write_text(
        "source,destination,md5\n"
        f"s3://{src}/run7/s1.fastq.gz,s3://{dst}/run7/s1.fastq.gz,{md5(single)}\n"
        f"s3://{src}/run7/s2.cram,s3://{dst}/run7/s2.cram,{md5(big).upper()}\n"
        f"s3://{src}/run7/s3.fastq.gz,s3://{dst}/run7/s3.fastq.gz,{md5(b'what the provider sent')}\n"
    )
    done = run_cli(["transfer", str(manifest), "--report", f"s3://{audit}/reports/", "--json"], env)
    assert done.returncode == 1, done.stderr  # one file failed
    result = json.loads(done.stdout)
    assert (result["copied"], result["failed"]) == (2, 1)

    [(folder, (summary, rows, data))] = reports(client, audit).items()
    assert folder.endswith(f"/{result['flow_run_id']}/") and result["report"] == f"s3://{audit}/{folder}"
    assert summary["csv"]["sha256"] == hashlib.sha256(data).hexdigest()  # the two prove each other
    assert summary["counts"] == {"copied": 2, "failed": 1} and summary["state"] == "failed"
    assert summary["manifest"]["uri"] == str(manifest)
    assert summary["manifest"]["sha256"] == sha256(manifest.read_bytes())
    files = by_destination(rows)
    assert files["s1.fastq.gz"]["status"] == "copied"
    assert "expected MD5 = ETag" in files["s1.fastq.gz"]["evidence"]
    assert files["s1.fastq.gz"]["md5"] == md5(single)
    assert files["s1.fastq.gz"]["destination_etag"] == client.head_object(
        Bucket=dst, Key="run7/s1.fastq.gz")["ETag"].strip('"')
    assert files["s2.cram"]["status"] == "copied"
    assert "expected MD5 of the bytes read" in files["s2.cram"]["evidence"]
    assert files["s3.fastq.gz"]["status"] == "failed"
    assert files["s3.fastq.gz"]["error_code"] == "ChecksumMismatch"
    assert md5(bad) in files["s3.fastq.gz"]["error_message"]
    assert {r["flow_run_id"] for r in rows.to_dict("records")} == {result["flow_run_id"]}
    assert all(rows["start"]) and all(rows["end"])
    # Nothing of the mismatched file reached the destination.
    assert "Contents" not in client.list_objects_v2(Bucket=dst, Prefix="run7/s3")
    assert client.get_object(Bucket=dst, Key="run7/s2.cram")["Body"].read() == big

    # A second run finds s1 and s2 in place: skipped, again proven, a second report.
    again = run_cli(["transfer", str(manifest), "--report", f"s3://{audit}/reports/", "--json"], env)
    assert again.returncode == 1 and json.loads(again.stdout)["skipped"] == 2
    assert len(reports(client, audit)) == 2

    # The Prefect server's database replaced by an empty one: the reports still answer.
    with PrefectServer(Path(tempfile.mkdtemp(prefix="s3flow-empty-prefect-"))) as empty:
        later = {**env, **empty.env(), "S3FLOW_CACHE": str(tmp_path / "cache")}
        asked = run_cli(["history", f"s3://{dst}/run7/s1.fastq.gz", "--reports", f"s3://{audit}/reports/",
                         "--json"], later)
        assert asked.returncode == 0, asked.stderr
        entries = json.loads(asked.stdout)
        assert [e["status"] for e in entries] == ["skipped", "copied"]  # newest first
        assert {e["role"] for e in entries} == {"destination"}
        assert entries[1]["md5"] == md5(single) and "expected MD5 = ETag" in entries[1]["evidence"]
        failed = run_cli(["history", f"s3://{src}/run7/s3.fastq.gz", "--reports", f"s3://{audit}/reports/"],
                         later)
        assert failed.returncode == 0 and "ChecksumMismatch" in failed.stdout, failed.stdout
        # Prefect's own history knows nothing now.
        assert run_cli(["history", f"s3://{dst}/run7/s1.fastq.gz"], later).returncode == 1


def test_verify_checks_the_manifest_md5(seaweed, buckets, env, write_manifest):
    client = seaweed.client()
    src, dst = buckets("src", "dst")
    client.put_object(Bucket=src, Key="a.bam", Body=b"reads")
    client.put_object(Bucket=dst, Key="a.bam", Body=b"reads")
    good = write_manifest(f"source,destination,md5\ns3://{src}/a.bam,s3://{dst}/a.bam,{md5(b'reads')}\n")
    assert run_cli(["verify", good], env).returncode == 0
    wrong = write_manifest(f"source,destination,md5\ns3://{src}/a.bam,s3://{dst}/a.bam,{md5(b'other')}\n", "w.csv")
    checked = run_cli(["verify", wrong], env)
    assert checked.returncode == 1 and "ChecksumMismatch" in checked.stdout, checked.stdout
    # plan sees it too (a single-part ETag is the MD5: no byte read).
    planned = run_cli(["plan", wrong, "--json"], env)
    assert planned.returncode == 1 and json.loads(planned.stdout)["failed"]["objects"] == 1, planned.stdout


def test_unknown_column_and_missing_report_bucket_are_bad_input(seaweed, buckets, env, write_manifest):
    """The issue's case: a header's names are read, so an md5 column is never taken for a
    version id, and a column we do not know is an error naming it."""
    client = seaweed.client()
    src, dst = buckets("src", "dst")
    client.put_object(Bucket=src, Key="k", Body=b"x")
    unknown = write_manifest(f"source,destination,crc\ns3://{src}/k,s3://{dst}/k,abc\n")
    done = run_cli(["transfer", unknown], env)
    assert done.returncode == 2 and "unknown column 'crc'" in done.stderr and "Traceback" not in done.stderr
    good = write_manifest(f"source,destination\ns3://{src}/k,s3://{dst}/k\n", "g.csv")
    done = run_cli(["transfer", good, "--report", "s3://no-such-audit-bucket/r/"], env)
    assert done.returncode == 2 and "no-such-audit-bucket" in done.stderr and "Traceback" not in done.stderr
    assert "Contents" not in client.list_objects_v2(Bucket=dst)  # nothing half-done


@pytest.fixture(params=["seaweed", "moto"])
def store(request, prefect_server):
    """(client, env, source bucket, destination bucket) on SeaweedFS and on moto."""
    if request.param == "seaweed":
        server = request.getfixturevalue("seaweed")
        client, env = server.client(), server.env()
        src, dst = request.getfixturevalue("buckets")("src", "dst")
    else:
        url, client = request.getfixturevalue("moto")
        env = {"AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS}
        src, dst = f"sums-src-{os.urandom(3).hex()}", f"sums-dst-{os.urandom(3).hex()}"
        client.create_bucket(Bucket=src)
        client.create_bucket(Bucket=dst)
    return client, {**env, **prefect_server.env()}, src, dst


def checksum(client, bucket: str, key: str) -> tuple[str, str]:
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return next((name, head[name]) for name in ("ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32",
                                                 "ChecksumSHA256") if head.get(name))


def test_checksums_are_kept_and_compared_with_no_byte_read(store, tmp_path):
    """By default the source's checksum is kept (not replaced by one we ask for), in one
    CopyObject and in parts (as a full-object checksum), and the copy's is compared with
    the source's: "verified by <algorithm> full-object"."""
    client, env, src, dst = store
    small, large, sequenced = b"GATTACA" * 1000, os.urandom(12 * MiB), b"NNNN" * 4000
    client.put_object(Bucket=src, Key="s.vcf", Body=small, ChecksumAlgorithm="CRC64NVME")
    # CRC32, not CRC32C: moto computes a multipart CRC32C with CRC32 (its bug; AWS and
    # SeaweedFS do not), and the comparison rightly fails such a copy.
    client.put_object(Bucket=src, Key="l.cram", Body=large, ChecksumAlgorithm="CRC32")
    client.put_object(Bucket=src, Key="q.fastq", Body=sequenced, ChecksumAlgorithm="SHA256")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "destination,source,sha256\n"  # named columns, in any order
        f"s3://{dst}/s.vcf,s3://{src}/s.vcf,\n"
        f"s3://{dst}/l.cram,s3://{src}/l.cram,\n"
        f"s3://{dst}/q.fastq,s3://{src}/q.fastq,{sha256(sequenced)}\n"
    )
    done = run_cli(["transfer", str(manifest), "--report", f"s3://{dst}/audit/", "--json",
                    "--multipart-threshold-mib", "5", "--part-size-mib", "5", "--ignore-source-layout"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    [(_, (_, rows, _))] = reports(client, dst, "audit/").items()
    files = by_destination(rows)
    for key, algorithm in (("s.vcf", "CRC64NVME"), ("l.cram", "CRC32")):
        kept = checksum(client, dst, key)
        assert kept == checksum(client, src, key) and kept[0] == f"Checksum{algorithm}", key
        assert f"{algorithm} full-object" in files[key]["evidence"], files[key]
        assert (files[key]["checksum_algorithm"], files[key]["checksum"]) == (algorithm, kept[1])
    assert files["l.cram"]["detail"].startswith("multipart, 3 parts")  # cut in our parts: CRC32 kept whole
    assert "expected SHA256 = full-object checksum" in files["q.fastq"]["evidence"]
    assert base64.b64decode(checksum(client, src, "q.fastq")[1]).hex() == sha256(sequenced)


def test_report_objects_locked_when_asked(moto, prefect_server, tmp_path):
    """moto keeps Object Lock: the final report objects carry the retention asked for."""
    url, client = moto
    env = {"AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS, **prefect_server.env()}
    src, dst, vault = (f"{role}-{os.urandom(3).hex()}" for role in ("lsrc", "ldst", "vault"))
    client.create_bucket(Bucket=src)
    client.create_bucket(Bucket=dst)
    client.create_bucket(Bucket=vault, ObjectLockEnabledForBucket=True)
    client.put_object(Bucket=src, Key="k", Body=b"x")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"s3://{src}/k,s3://{dst}/k\n")
    done = run_cli(["transfer", str(manifest), "--report", f"s3://{vault}/", "--report-retention",
                    "COMPLIANCE:30", "--json"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=vault)["Contents"]]
    assert sorted(k.rsplit("/", 1)[-1] for k in keys) == ["files.csv.gz", "summary.json"]
    for key in keys:
        head = client.head_object(Bucket=vault, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE", key
        assert head["ObjectLockRetainUntilDate"].year >= 2026
    bad = run_cli(["transfer", str(manifest), "--report", f"s3://{vault}/", "--report-retention", "FOREVER"], env)
    assert bad.returncode == 2 and "report retention" in bad.stderr
