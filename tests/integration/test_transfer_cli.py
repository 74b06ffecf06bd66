"""`s3flow transfer` against a real SeaweedFS and a real Prefect server."""
from __future__ import annotations

import json
import os

import pytest

from s3flow.cli import main
from tests.conftest import listing, put_multipart, run_cli

MiB = 1024 * 1024
SMALL = ["--multipart-threshold-mib", "5", "--part-size-mib", "5"]


@pytest.fixture()
def cli(prefect_api, s3_env, capsys):
    """Run `s3flow ...` in this process; returns (exit code, JSON summary or stdout, stderr)."""
    def run(*args: str):
        code = main(list(args))
        out, err = capsys.readouterr()
        if "--json" in args and out.strip():
            return code, json.loads(out), err
        return code, out, err

    return run


def put(client, bucket, key, body=b"", **properties):
    client.put_object(Bucket=bucket, Key=key, Body=body, **properties)


def test_objects_and_prefixes_arrive_byte_for_byte_with_properties(seaweed, buckets, cli, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    files = {f"run/r{i:03d}.fastq": os.urandom(1000 + i) for i in range(40)}
    files["run/empty.txt"] = b""
    for key, body in files.items():
        put(c, src, key, body)
    files["run/big/sample.bam"] = os.urandom(12 * MiB + 5)  # uploaded in 3 parts: copied in 3
    put_multipart(c, src, "run/big/sample.bam", files["run/big/sample.bam"], 5 * MiB)
    files["run/big/single-part.bam"] = os.urandom(11 * MiB)  # one PUT: one CopyObject keeps its ETag
    put(c, src, "run/big/single-part.bam", files["run/big/single-part.bam"])
    put(c, src, "run/big/tagged.cram", os.urandom(11 * MiB), ContentType="application/x-cram",
        Metadata={"sample": "NA12878", "batch": "42"}, Tagging="project=genome&tier=hot")
    put(c, src, "single/report.pdf", b"%PDF" * 100, ContentType="application/pdf",
        Metadata={"owner": "lab-7"}, Tagging="kind=report")
    manifest = write_manifest(
        f"source,destination\ns3://{src}/run/,s3://{dst}/batch-42/\n"
        f"s3://{src}/single/report.pdf,s3://{dst}/reports/\n")

    code, summary, err = cli("transfer", manifest, "--json", *SMALL)

    assert code == 0, err
    assert summary["files"] == summary["copied"] == len(files) + 2 and summary["failed"] == 0
    assert summary["bytes_copied"] == sum(map(len, files.values())) + 11 * MiB + 400
    copied = listing(c, dst)
    assert {k.removeprefix("batch-42/"): v for k, v in copied.items() if k.startswith("batch-42/")} == \
        {k.removeprefix("run/"): v for k, v in listing(c, src, "run/").items()}
    assert copied["reports/report.pdf"] == b"%PDF" * 100
    for key, content_type, metadata, tags in [
        ("batch-42/big/tagged.cram", "application/x-cram", {"sample": "NA12878", "batch": "42"},
         {"project": "genome", "tier": "hot"}),
        ("reports/report.pdf", "application/pdf", {"owner": "lab-7"}, {"kind": "report"}),
    ]:
        head = c.head_object(Bucket=dst, Key=key)
        assert (head["ContentType"], head["Metadata"]) == (content_type, metadata)
        assert {t["Key"]: t["Value"] for t in c.get_object_tagging(Bucket=dst, Key=key)["TagSet"]} == tags
    assert c.head_object(Bucket=dst, Key="batch-42/big/sample.bam")["ETag"].endswith('-3"')
    assert c.head_object(Bucket=dst, Key="batch-42/big/single-part.bam")["ETag"] == \
        c.head_object(Bucket=src, Key="run/big/single-part.bam")["ETag"]
    assert not c.list_multipart_uploads(Bucket=dst).get("Uploads")


def test_second_run_of_a_sync_copies_nothing_and_copies_changes(seaweed, buckets, cli, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for i in range(30):
        put(c, src, f"p/{i}", os.urandom(100))
    put(c, src, "p/large", os.urandom(6 * MiB))
    manifest = write_manifest(f"s3://{src}/p/,s3://{dst}/p/\ns3://{src}/p/0,s3://{dst}/single/0\n")
    assert cli("transfer", manifest, "--json", *SMALL)[1]["copied"] == 32

    code, again, _ = cli("transfer", manifest, "--json", *SMALL)
    assert (code, again["copied"], again["skipped"], again["files"]) == (0, 0, 32, 32)

    put(c, src, "p/3", b"changed size")
    put(c, src, "p/new", b"new object")
    code, third, _ = cli("transfer", manifest, "--json", *SMALL)
    assert (third["copied"], third["skipped"]) == (2, 31)
    assert listing(c, dst, "p/") == {f"p/{k.removeprefix('p/')}": v for k, v in listing(c, src, "p/").items()}


def test_delete_removes_only_what_the_source_no_longer_has(seaweed, buckets, cli, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    put(c, src, "data/keep", b"1")
    put(c, dst, "mirror/keep", b"1")
    put(c, dst, "mirror/stale/one", b"old")
    put(c, dst, "mirror/stale two", b"old")
    put(c, dst, "elsewhere/untouched", b"x")
    manifest = write_manifest(f"s3://{src}/data/,s3://{dst}/mirror/\n")

    code, plain, _ = cli("transfer", manifest, "--json")
    assert (code, plain["deleted"]) == (0, 0)
    assert "mirror/stale/one" in listing(c, dst)

    code, summary, _ = cli("transfer", manifest, "--json", "--delete")
    assert (code, summary["deleted"], summary["skipped"]) == (0, 2, 1)
    assert set(listing(c, dst)) == {"mirror/keep", "elsewhere/untouched"}


# Every character class a key may hold. SeaweedFS keeps each '/'-separated part to
# 255 bytes and folds '//' (the moto test below covers double slashes).
ZOO = ["with space.txt", "ünïcödé/日本語/файл", "plus+sign", "percent%20literal", "eq=amp&q?hash#",
       "tilde~!$'()*;:@,", "empty-object", "deep/" + "/".join(["p" * 200] * 5)]


def test_key_zoo_and_zero_byte_objects(seaweed, buckets, cli, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    assert len(ZOO[-1].encode()) > 1000
    for key in ZOO:
        put(c, src, f"zoo/{key}", b"" if key == "empty-object" else key.encode())
    rows = [f'"s3://{src}/zoo/{key}","s3://{dst}/objects/{key}"' for key in ZOO[:-1]]
    manifest = write_manifest("\n".join([*rows, f"s3://{src}/zoo/,s3://{dst}/prefix/"]) + "\n")

    code, summary, err = cli("transfer", manifest, "--json")

    assert code == 0, (summary, err)
    assert summary["copied"] == 2 * len(ZOO) - 1
    got = listing(c, dst)
    for key in ZOO:
        expected = b"" if key == "empty-object" else key.encode()
        assert got[f"prefix/{key}"] == expected
        if key != ZOO[-1]:
            assert got[f"objects/{key}"] == expected


def test_double_slash_keys_against_moto(moto_env, prefect_api, tmp_path, capsys):
    url, c = moto_env
    c.create_bucket(Bucket="moto-src")
    c.create_bucket(Bucket="moto-dst")
    keys = ["a//b", "//leading", "trailing//x", "x/" + "k" * 1000]
    for key in keys:
        c.put_object(Bucket="moto-src", Key=key, Body=key.encode())
    manifest = tmp_path / "m.csv"
    manifest.write_text("s3://moto-src/,s3://moto-dst/\n")
    assert main(["transfer", str(manifest), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["copied"] == len(keys)
    assert listing(c, "moto-dst") == {key: key.encode() for key in keys}


BAD = [
    ("", "empty"),
    ("source,destination\n", "no rows"),
    ("s3://{src}/k\n", "line 1, columns"),
    ("s3://{src}/k,s3://{dst}/k,v1,s3://{dst}/x\n", "line 1, columns"),
    ("s3://{src}/k,s3://{dst}/k,s3://{dst}/x\n", "line 1, version_id"),
    ("s3://{src}/k,s3://{dst}/k\nnot-a-uri,s3://{dst}/y\n", "line 2, source"),
    ("s3://{src}/k,s3:///k\n", "line 1, destination: 's3:///k' has an empty bucket name"),
    ("s3://{src}/p/,s3://{dst}/object\n", "line 1, destination"),
    ("s3://{src}/k,s3://{src}/k\n", "equals the source"),
    ("s3://{src}/p/,s3://{src}/p/sub/\n", "inside its own source prefix"),
    ("s3://{src}/k,s3://{dst}/same\ns3://{src}/p/j,s3://{dst}/same\n", "line 2, destination: two rows"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_manifest_exits_2_names_the_line_and_copies_nothing(seaweed, buckets, cli, write_manifest,
                                                                text, message):
    src, dst = buckets("src", "dst")
    put(seaweed.client(), src, "k", b"data")
    put(seaweed.client(), src, "p/j", b"data")
    manifest = write_manifest(text.format(src=src, dst=dst))
    code, out, err = cli("transfer", manifest)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert listing(seaweed.client(), dst) == {}


def test_unreadable_manifest_and_missing_manifest_object(buckets, cli, tmp_path):
    code, _, err = cli("transfer", str(tmp_path / "nope.csv"))
    assert code == 2 and "cannot read manifest" in err
    (bucket,) = buckets("man")
    code, _, err = cli("transfer", f"s3://{bucket}/lists/missing.csv")
    assert code == 2 and "NoSuchKey" in err and f"s3://{bucket}/lists/missing.csv" in err


def test_missing_source_and_missing_destination_bucket_fail_alone(seaweed, buckets, cli, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for key in ("a", "b", "p/1", "p/2"):
        put(c, src, key, key.encode())
    manifest = write_manifest(
        f"s3://{src}/a,s3://{dst}/a\ns3://{src}/gone,s3://{dst}/gone\n"
        f"s3://{src}/b,s3://no-such-bucket-x1/b\ns3://{src}/p/,s3://no-such-bucket-x1/p/\n"
        f"s3://{src}/p/,s3://{dst}/p/\n")

    code, summary, _ = cli("transfer", manifest, "--json")

    assert code == 1
    assert (summary["copied"], summary["failed"]) == (3, 4)
    errors = {(f["source"], f["destination"]): f["error"] for f in summary["failures"]}
    assert errors[(f"s3://{src}/gone", f"s3://{dst}/gone")].startswith("NoSuchKey")
    for source in ("b", "p/1", "p/2"):
        destination = f"s3://no-such-bucket-x1/{source}"
        assert errors[(f"s3://{src}/{source}", destination)].startswith("NoSuchBucket")
    assert listing(c, dst) == {"a": b"a", "p/1": b"p/1", "p/2": b"p/2"}


def test_manifest_read_from_s3(seaweed, buckets, cli):
    src, dst, manifests = buckets("src", "dst", "manifests")
    c = seaweed.client()
    put(c, src, "x/1", b"one")
    put(c, manifests, "batches/batch-42.csv", f"s3://{src}/x/\ts3://{dst}/y/\n".encode())
    code, summary, _ = cli("transfer", f"s3://{manifests}/batches/batch-42.csv", "--json")
    assert (code, summary["copied"]) == (0, 1)
    assert listing(c, dst) == {"y/1": b"one"}


def test_real_process_prints_one_json_object_and_exit_codes(seaweed, prefect_server, buckets,
                                                             write_manifest):
    src, dst = buckets("src", "dst")
    put(seaweed.client(), src, "k", b"v")
    env = {**seaweed.env(), **prefect_server.env()}
    good = write_manifest(f"s3://{src}/k,s3://{dst}/k\n", "good.csv")
    done = run_cli(["transfer", good, "--json"], env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == {"files", "copied", "skipped", "failed", "deleted", "cancelled", "bytes_copied",
                            "seconds", "failures", "error_codes", "causes", "flow_run_id"}
    assert (summary["copied"], summary["bytes_copied"], summary["failures"]) == (1, 1, [])
    followed = run_cli(["status", summary["flow_run_id"], "--json"], env)  # a script follows up
    assert followed.returncode == 0 and json.loads(followed.stdout)["counts"] == {"copied": 1}

    failing = write_manifest(f"s3://{src}/missing,s3://{dst}/m\n", "failing.csv")
    done = run_cli(["transfer", failing], env)
    assert done.returncode == 1
    assert "FAILED" in done.stdout and "NoSuchKey" in done.stdout and "flow run" in done.stdout

    done = run_cli(["transfer", good, "--part-size-mib", "1"], env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "options: part size: must be 5 MiB to 5 GiB (S3's part limits), got 1 MiB" in done.stderr

    done = run_cli(["transfer", good], {**env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert done.returncode == 2 and "credentials" in done.stderr and "Traceback" not in done.stderr

    done = run_cli(["transfer", good], {**env, "AWS_ACCESS_KEY_ID": "nobody-we-know"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the source credentials are not valid" in done.stderr and "InvalidAccessKeyId" in done.stderr
    assert listing(seaweed.client(), dst) == {"k": b"v"}  # only the first, good run copied


def test_unreachable_endpoint_is_bad_input(buckets, cli, write_manifest, monkeypatch):
    from s3flow.local import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    manifest = write_manifest("s3://some-src/k,s3://some-dst/k\n")
    code, _, err = cli("transfer", manifest, "--max-attempts", "2")
    assert code == 2
    assert f"cannot reach the source S3 endpoint {dead}" in err and "Traceback" not in err


def test_version_id_column_copies_that_version(moto_env, prefect_api, tmp_path, capsys):
    url, c = moto_env
    c.create_bucket(Bucket="versioned-src")
    c.create_bucket(Bucket="versioned-dst")
    c.put_bucket_versioning(Bucket="versioned-src", VersioningConfiguration={"Status": "Enabled"})
    old = c.put_object(Bucket="versioned-src", Key="sample.vcf", Body=b"version one")["VersionId"]
    c.put_object(Bucket="versioned-src", Key="sample.vcf", Body=b"version two, longer")
    manifest = tmp_path / "versions.csv"
    manifest.write_text(f"s3://versioned-src/sample.vcf,s3://versioned-dst/v1.vcf,{old}\n"
                        "s3://versioned-src/sample.vcf,s3://versioned-dst/latest.vcf\n"
                        "s3://versioned-src/sample.vcf,s3://versioned-dst/bad.vcf,NoSuchVersion1\n")
    assert main(["transfer", str(manifest), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["copied"] == 2 and summary["bytes_copied"] == len(b"version one") + len(b"version two, longer")
    assert [f["source"] for f in summary["failures"]] == ["s3://versioned-src/sample.vcf?versionId=NoSuchVersion1"]
    assert listing(c, "versioned-dst") == {"v1.vcf": b"version one", "latest.vcf": b"version two, longer"}


def test_bad_input_battery_in_a_real_process(seaweed, prefect_server, buckets, write_manifest):
    """Each is exit 2 with the problem named, no traceback, and nothing at the destination."""
    import gzip

    src, dst, manifests = buckets("src", "dst", "manifests")
    c = seaweed.client()
    put(c, src, "k", b"v")
    good = f"s3://{src}/k,s3://{dst}/k\n"
    put(c, manifests, "batch.csv.gz", gzip.compress(good.encode()))
    put(c, manifests, "latin1.csv", f"s3://{src}/caf\xe9,s3://{dst}/k\n".encode("latin-1"))
    env = {**seaweed.env(), **prefect_server.env()}
    no_credentials = {**env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    cases = [
        (["transfer", write_manifest(good)], no_credentials, "no AWS credentials for the source"),
        (["transfer", f"s3://{manifests}/batch.csv.gz"], env, "not a text file"),
        (["transfer", f"s3://{manifests}/latin1.csv"], env, "not UTF-8 text"),
        (["transfer", f"s3://{manifests}/nothing-here.csv"], env, "NoSuchKey"),
        (["transfer", f"s3://{manifests}/lists/"], env, "is a prefix, not an object"),
        (["transfer", write_manifest(good), "--checksum", "md5"], env, "checksum: 'MD5' is not one of"),
    ]
    for args, case_env, message in cases:
        done = run_cli(args, case_env)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr[-2000:])
    assert not c.list_objects_v2(Bucket=dst).get("Contents")
