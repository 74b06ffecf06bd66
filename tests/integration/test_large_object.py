"""An object over 5 GiB, which no single CopyObject can copy, on a real SeaweedFS.

Uploaded in 82 distinct parts of 64 MiB; copied in the same layout (so on S3 the
ETags would match), then verified by the copier (range MD5s) and by this test."""
from __future__ import annotations

import json
import os
import shutil
import struct

import pytest

from s3flow.cli import main

MiB = 1024 * 1024
UPLOAD_PART = 64 * MiB
PARTS = 82  # 82 x 64 MiB = 5.125 GiB
NEEDED_DISK = 16 * 1024 * MiB  # source + copy + SeaweedFS volume slack


@pytest.fixture()
def huge_object(seaweed, buckets):
    if shutil.disk_usage(seaweed.directory).free < NEEDED_DISK:
        pytest.skip("needs 16 GiB of free disk for a 5.1 GiB object and its copy")
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    block = bytearray(os.urandom(UPLOAD_PART))
    upload = c.create_multipart_upload(Bucket=src, Key="wgs/huge.bam", ContentType="application/bam",
                                       Metadata={"sample": "HG002"}, Tagging="size=huge")
    parts = []
    for number in range(1, PARTS + 1):
        block[:8] = struct.pack(">Q", number)  # every part different, so order errors show
        answer = c.upload_part(Bucket=src, Key="wgs/huge.bam", UploadId=upload["UploadId"],
                               PartNumber=number, Body=bytes(block))
        parts.append({"ETag": answer["ETag"], "PartNumber": number})
    c.complete_multipart_upload(Bucket=src, Key="wgs/huge.bam", UploadId=upload["UploadId"],
                                MultipartUpload={"Parts": parts})
    yield src, dst
    c.delete_object(Bucket=src, Key="wgs/huge.bam")
    c.delete_object(Bucket=dst, Key="wgs/huge.bam")


def test_object_over_5_gib_is_copied_in_parts(seaweed, huge_object, prefect_api, s3_env, tmp_path,
                                              capsys):
    src, dst = huge_object
    c = seaweed.client()
    size = PARTS * UPLOAD_PART
    assert size > 5 * 1024 * MiB
    manifest = tmp_path / "huge.csv"
    manifest.write_text(f"s3://{src}/wgs/huge.bam,s3://{dst}/wgs/huge.bam\n")

    code = main(["transfer", str(manifest), "--json", "--part-concurrency", "8"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert (summary["copied"], summary["bytes_copied"]) == (1, size)
    head = c.head_object(Bucket=dst, Key="wgs/huge.bam")
    assert head["ContentLength"] == size
    assert head["ETag"].endswith(f'-{PARTS}"')  # the source's own layout, part for part
    assert (head["ContentType"], head["Metadata"]) == ("application/bam", {"sample": "HG002"})
    assert c.get_object_tagging(Bucket=dst, Key="wgs/huge.bam")["TagSet"] == [{"Key": "size", "Value": "huge"}]
    # Bytes around every part boundary and the end (the copy's own verification also
    # compared the MD5 of every range, as SeaweedFS's multipart ETags differ from S3's).
    edges = sorted({*range(0, size, UPLOAD_PART), *range(0, size, 100 * MiB), size})
    for edge in edges:
        window = f"bytes={max(edge - 4096, 0)}-{min(edge + 4096, size) - 1}"
        got = c.get_object(Bucket=dst, Key="wgs/huge.bam", Range=window)["Body"].read()
        want = c.get_object(Bucket=src, Key="wgs/huge.bam", Range=window)["Body"].read()
        assert got == want, window
    assert not c.list_multipart_uploads(Bucket=dst).get("Uploads")
