"""What is preserved, and what can be set, on single and multipart copies."""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from s3flow.cli import main
from tests.conftest import MOTO_CREDENTIALS, put_multipart

MiB = 1024 * 1024
PROPERTIES = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding",
              "ContentLanguage", "Metadata")


def _store(kind: str, request, monkeypatch):
    if kind == "seaweed":
        server = request.getfixturevalue("seaweed")
        env, client = server.env(), server.client()
        src, dst = request.getfixturevalue("buckets")("src", "dst")
    else:
        url, client = request.getfixturevalue("moto")
        env = {"AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS}
        src, dst = f"props-src-{os.urandom(3).hex()}", f"props-dst-{os.urandom(3).hex()}"
        client.create_bucket(Bucket=src)
        client.create_bucket(Bucket=dst)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return client, src, dst


@pytest.fixture(params=["seaweed", "moto"])
def store(request, monkeypatch, prefect_api):
    """(client, source bucket, destination bucket) on a real SeaweedFS and on moto."""
    return _store(request.param, request, monkeypatch)


@pytest.fixture()
def moto_store(request, monkeypatch, prefect_api):
    """moto only: SeaweedFS keeps no storage classes, SSE settings or ACLs."""
    return _store("moto", request, monkeypatch)


def run(capsys, *args: str, part_copies: str = "always") -> dict:
    """A transfer that copies objects over 5 MiB in parts (moto stands in for AWS here)."""
    code = main(["transfer", *args, "--json", "--multipart-threshold-mib", "5", "--part-size-mib", "5",
                 "--part-copies", part_copies])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    return summary


def test_multipart_copy_keeps_every_property_of_the_source(store, tmp_path, capsys):
    client, src, dst = store
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    properties = dict(
        ContentType="application/gzip", CacheControl="max-age=3600",
        ContentDisposition='attachment; filename="s.vcf.gz"', ContentEncoding="gzip",
        ContentLanguage="en-GB", Expires=expires, Metadata={"sample": "HG002", "pipeline": "v2.1"},
        Tagging="project=giab&tier=cold")
    put_multipart(client, src, "big.vcf.gz", os.urandom(12 * MiB), 5 * MiB, **properties)
    client.put_object(Bucket=src, Key="small.vcf.gz", Body=os.urandom(1000), **properties)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"s3://{src}/,s3://{dst}/\n")

    summary = run(capsys, str(manifest))

    assert summary["copied"] == 2
    for key in ("big.vcf.gz", "small.vcf.gz"):
        source = client.head_object(Bucket=src, Key=key)
        copy = client.head_object(Bucket=dst, Key=key)
        kept = {p: source.get(p) for p in PROPERTIES}
        assert kept["ContentType"] == "application/gzip" and kept["Metadata"]["sample"] == "HG002"
        assert {p: copy.get(p) for p in PROPERTIES} == kept, key
        assert copy.get("ExpiresString") == source.get("ExpiresString")
        assert client.get_object_tagging(Bucket=dst, Key=key)["TagSet"] == \
            client.get_object_tagging(Bucket=src, Key=key)["TagSet"]
    assert client.head_object(Bucket=dst, Key="big.vcf.gz")["ETag"].endswith('-3"')


def test_etags_match_where_the_store_computes_them_as_s3_does(moto_store, tmp_path, capsys):
    client, src, dst = moto_store
    put_multipart(client, src, "run/sample.cram", os.urandom(11 * MiB + 7), 5 * MiB)
    put_multipart(client, src, "run/odd.cram", os.urandom(13 * MiB), 6 * MiB)
    client.put_object(Bucket=src, Key="run/single.cram", Body=os.urandom(7 * MiB))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"s3://{src}/run/,s3://{dst}/run/\n")
    run(capsys, str(manifest))
    for key in ("run/sample.cram", "run/odd.cram", "run/single.cram"):
        assert client.head_object(Bucket=dst, Key=key)["ETag"] == \
            client.head_object(Bucket=src, Key=key)["ETag"], key
    # A second sync compares ETags plainly: nothing to copy.
    assert run(capsys, str(manifest))["skipped"] == 3


def test_each_copy_records_the_checksum_s3_computed(store, tmp_path, capsys):
    """With --checksum CRC32C each copy asks for CRC32C (replacing the source's); what the
    store answers is in the per-file table and is what the destination reports later."""
    from s3flow.flows.transfer import artifact_base
    from tests.integration.test_transfer_flow import artifacts, table_rows

    client, src, dst = store
    client.put_object(Bucket=src, Key="sums/small.txt", Body=b"ACGT" * 1000)
    put_multipart(client, src, "sums/big.cram", os.urandom(11 * MiB), 5 * MiB)
    manifest = tmp_path / "sums.csv"
    manifest.write_text(f"s3://{src}/sums/,s3://{dst}/sums/\n")
    run(capsys, str(manifest), "--checksum", "CRC32C")
    rows = table_rows(artifacts(f"{artifact_base(str(manifest))}-files")[0])
    recorded = {row["destination"].rsplit("/", 1)[-1]: row["checksum"] for row in rows}
    assert any(recorded.values())  # each store computes it for one kind of copy at least
    for name, checksum in recorded.items():
        if checksum:
            algorithm, _, value = checksum.partition(":")
            head = client.head_object(Bucket=dst, Key=f"sums/{name}", ChecksumMode="ENABLED")
            assert (algorithm, head.get(f"Checksum{algorithm}")) == ("CRC32C", value), name


def test_other_stores_copy_multipart_sources_whole_where_that_keeps_the_etag(request, monkeypatch, prefect_api,
                                                                           tmp_path, capsys):
    """SeaweedFS keeps a multipart source's ETag on a single CopyObject, which costs it half
    the CPU of part copies: by default (--part-copies auto) that is how it gets them."""
    from s3flow.flows.transfer import artifact_base
    from tests.integration.test_transfer_flow import artifacts, table_rows

    client, src, dst = _store("seaweed", request, monkeypatch)
    for name in ("a.cram", "b.cram", "c.cram"):
        put_multipart(client, src, f"run/{name}", os.urandom(12 * MiB), 5 * MiB)
    manifest = tmp_path / "whole.csv"
    manifest.write_text(f"s3://{src}/run/,s3://{dst}/run/\n")
    assert run(capsys, str(manifest), part_copies="auto")["copied"] == 3
    rows = table_rows(artifacts(f"{artifact_base(str(manifest))}-files")[0])
    assert {(row["parts"], row["detail"]) for row in rows} == {(1, "CopyObject (instead of part copies: this "
                                                                  "store keeps the ETag of a single copy); "
                                                                  "ETag matches the source")}
    for name in ("a.cram", "b.cram", "c.cram"):
        etag = client.head_object(Bucket=dst, Key=f"run/{name}")["ETag"]
        assert etag == client.head_object(Bucket=src, Key=f"run/{name}")["ETag"] and etag.endswith('-3"')


def test_ignoring_the_source_layout_uses_our_parts(moto_store, tmp_path, capsys):
    client, src, dst = moto_store
    put_multipart(client, src, "x.bam", os.urandom(12 * MiB), 6 * MiB)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"s3://{src}/x.bam,s3://{dst}/x.bam\n")
    run(capsys, str(manifest), "--ignore-source-layout")
    assert client.head_object(Bucket=dst, Key="x.bam")["ETag"].endswith('-3"')  # 5 MiB parts


def test_destination_properties_can_be_set(moto_store, tmp_path, capsys):
    client, src, dst = moto_store
    client.put_object(Bucket=src, Key="ia/keep-class.txt", Body=b"x", StorageClass="STANDARD_IA")
    client.put_object(Bucket=src, Key="set/small.txt", Body=b"y")
    client.put_object(Bucket=src, Key="set/big.bin", Body=os.urandom(6 * MiB))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"s3://{src}/ia/,s3://{dst}/ia/\n")
    run(capsys, str(manifest))
    assert client.head_object(Bucket=dst, Key="ia/keep-class.txt")["StorageClass"] == "STANDARD_IA"

    manifest.write_text(f"s3://{src}/set/,s3://{dst}/set/\n")
    run(capsys, str(manifest), "--storage-class", "GLACIER_IR", "--sse", "AES256",
        "--bucket-owner-full-control", "--requester-pays")
    for key in ("set/small.txt", "set/big.bin"):
        head = client.head_object(Bucket=dst, Key=key)
        assert (head["StorageClass"], head["ServerSideEncryption"]) == ("GLACIER_IR", "AES256"), key
        grants = client.get_object_acl(Bucket=dst, Key=key)["Grants"]
        assert any(g["Permission"] == "FULL_CONTROL" for g in grants), key


@pytest.mark.parametrize("args, message", [
    (["--storage-class", "COLD"], "storage class: 'COLD' is not one of"),
    (["--sse-kms-key-id", "k-1"], "sse kms key id: needs --sse aws:kms"),
    (["--acl", "everyone"], "acl: 'everyone' is not a canned ACL"),
    (["--acl", "private", "--bucket-owner-full-control"], "both set the ACL"),
    (["--checksum", "md5"], "checksum: 'MD5' is not one of"),
])
def test_bad_property_options_are_bad_input(args, message, s3_env, prefect_api, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("s3://some-src/k,s3://some-dst/k\n")
    assert main(["transfer", str(manifest), *args]) == 2
    assert message in capsys.readouterr().err
