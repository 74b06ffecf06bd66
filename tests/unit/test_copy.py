"""The copy engine against botocore's Stubber: exact requests, in order (one thread)."""
import io
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from s3flow.config import Endpoint, MiB, TransferConfig
from s3flow.copy import Copier
from s3flow.plan import CopyItem, DeleteItem
from s3flow.record import CANCELLED, COPIED, FAILED, ObjectRef
from s3flow.retry import Retrier
from s3flow.storage import ObjectInfo, Storage

SRC, DST = ObjectRef("src-bucket", "data/sample.bam"), ObjectRef("dst-bucket", "copy/sample.bam")
ETAG = "a" * 32 + "-3"
SIZE = 12 * MiB


def stubbed_copier(endpoint_url: str = "https://s3.us-east-1.amazonaws.com", **options):
    """A Copier on one Storage whose requests go to botocore's Stubber, never the network."""
    storage = Storage(Endpoint(endpoint_url=endpoint_url, region="us-east-1",
                               access_key_id="k", secret_access_key="s"), 4, copy_lane=False)
    config = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB, max_concurrency=1,
                            part_concurrency=1, max_attempts=3, **options)
    return Stubber(storage._client), Copier(config, storage, storage, Retrier(config, sleep=lambda s: None))


@pytest.fixture()
def stubbed():
    """Amazon S3 (where multipart sources are copied in their parts)."""
    stub, copier = stubbed_copier()
    with stub:
        yield stub, copier
    copier.close()


def expect_head_and_create(stub):
    stub.add_response("head_object", {
        "ContentLength": SIZE, "ETag": f'"{ETAG}"', "ContentType": "application/x-bam",
        "Metadata": {"sample": "NA12878"}, "LastModified": datetime(2026, 1, 1, tzinfo=UTC),
        # A composite checksum (of the parts' checksums): the copy keeps the algorithm.
        "ChecksumCRC32C": "src==-3", "ChecksumType": "COMPOSITE",
    }, {"Bucket": SRC.bucket, "Key": SRC.key, "ChecksumMode": "ENABLED"})
    # The source's layout: 3 parts of 5 MiB (the ETag says 3, part 1 says 5 MiB).
    stub.add_response("head_object", {"ContentLength": 5 * MiB, "PartsCount": 3, "ETag": f'"{ETAG}"'},
                      {"Bucket": SRC.bucket, "Key": SRC.key, "PartNumber": 1})
    stub.add_response("get_object_tagging", {"TagSet": [{"Key": "run", "Value": "42"}]},
                      {"Bucket": SRC.bucket, "Key": SRC.key})
    stub.add_response("create_multipart_upload", {"UploadId": "up-1"}, {
        "Bucket": DST.bucket, "Key": DST.key, "ContentType": "application/x-bam",
        "Metadata": {"sample": "NA12878"}, "Tagging": "run=42", "ChecksumAlgorithm": "CRC32C"})


def part(number, first, last):
    return {"Bucket": DST.bucket, "Key": DST.key, "UploadId": "up-1", "PartNumber": number,
            "CopySource": {"Bucket": SRC.bucket, "Key": SRC.key},
            "CopySourceRange": f"bytes={first}-{last}", "CopySourceIfMatch": f'"{ETAG}"'}


def item():
    return CopyItem(SRC, DST, line=7, check_destination=False)


RANGES = [(1, 0, 5 * MiB - 1), (2, 5 * MiB, 10 * MiB - 1), (3, 10 * MiB, SIZE - 1)]


def expect_parts_and_complete(stub, final_etag):
    for number, first, last in RANGES:
        stub.add_response("upload_part_copy", {"CopyPartResult": {"ETag": f'"p{number}"'}},
                          part(number, first, last))
    stub.add_response("complete_multipart_upload", {"ETag": f'"{final_etag}"'}, {
        "Bucket": DST.bucket, "Key": DST.key, "UploadId": "up-1",
        "MultipartUpload": {"Parts": [{"ETag": f'"p{n}"', "PartNumber": n} for n in (1, 2, 3)]}})


def test_multipart_copy_reproduces_the_source_layout_and_pins_every_part(stubbed):
    stub, copier = stubbed
    expect_head_and_create(stub)
    ranges = RANGES
    stub.add_client_error("upload_part_copy", "SlowDown", http_status_code=503,
                          expected_params=part(*ranges[0]))
    for number, first, last in ranges:  # S3 computes each part's CRC32C, as asked at create
        stub.add_response("upload_part_copy", {"CopyPartResult": {
            "ETag": f'"p{number}"', "ChecksumCRC32C": f"c{number}=="}}, part(number, first, last))
    stub.add_response("complete_multipart_upload", {"ETag": f'"{ETAG}"', "ChecksumCRC32C": "all==-3"}, {
        "Bucket": DST.bucket, "Key": DST.key, "UploadId": "up-1",
        "MultipartUpload": {"Parts": [{"ETag": f'"p{n}"', "PartNumber": n, "ChecksumCRC32C": f"c{n}=="}
                                      for n in (1, 2, 3)]}})
    result = copier.copy(item())
    assert (result.status, result.size, result.line, result.parts) == (COPIED, SIZE, 7, 3)
    assert result.checksum == "CRC32C:all==-3"  # recorded for a later audit
    assert result.detail == "multipart, 3 parts (source layout); ETag matches the source"
    assert (result.attempts, result.requests) == (2, 9)  # 1 retry; head, head part 1, tagging, create, 3 parts + 1 retry, complete
    stub.assert_no_pending_responses()


def test_failed_part_aborts_the_upload_and_fails_the_file(stubbed):
    stub, copier = stubbed
    expect_head_and_create(stub)
    stub.add_response("upload_part_copy", {"CopyPartResult": {"ETag": '"p1"'}}, part(1, 0, 5 * MiB - 1))
    stub.add_client_error("upload_part_copy", "PreconditionFailed", http_status_code=412,
                          expected_params=part(2, 5 * MiB, 10 * MiB - 1))
    stub.add_response("abort_multipart_upload", {}, {
        "Bucket": DST.bucket, "Key": DST.key, "UploadId": "up-1"})
    result = copier.copy(item())
    assert result.status == FAILED
    assert result.error_code == "PreconditionFailed"
    stub.assert_no_pending_responses()


def test_cancel_mid_multipart_sends_no_more_parts_and_aborts_the_upload(stubbed):
    stub, copier = stubbed
    expect_head_and_create(stub)
    stub.add_response("upload_part_copy", {"CopyPartResult": {"ETag": '"p1"'}}, part(1, 0, 5 * MiB - 1))
    stub.add_response("abort_multipart_upload", {}, {
        "Bucket": DST.bucket, "Key": DST.key, "UploadId": "up-1"})
    # The user cancels while part 1 is being copied.
    copier.source._client.meta.events.register("after-call.s3.UploadPartCopy",
                                               lambda **kwargs: copier.cancel())
    result = copier.copy(item())
    assert result.status == CANCELLED
    assert "upload was aborted" in result.error
    stub.assert_no_pending_responses()  # parts 2 and 3 never sent, the abort was


def test_after_cancel_no_request_is_sent_and_every_file_is_cancelled(stubbed):
    stub, copier = stubbed
    copier.cancel()
    listed = ObjectInfo(SRC, 100, "b" * 32, 0.0)
    results = copier.run([CopyItem(SRC, DST, 1, listed, check_destination=False),
                          DeleteItem(ObjectRef("dst-bucket", "copy/old.bam"), 3, size=9)])
    assert [r.status for r in results] == [CANCELLED, CANCELLED]
    assert [r.line for r in results] == [1, 3]
    stub.assert_no_pending_responses()  # a request would have failed: none was stubbed


def test_single_copy_is_pinned_to_the_listed_etag(stubbed):
    stub, copier = stubbed
    listed = ObjectInfo(SRC, 100, "b" * 32, 0.0)
    stub.add_client_error("copy_object", "AccessDenied", http_status_code=403, expected_params={
        "Bucket": DST.bucket, "Key": DST.key, "CopySource": {"Bucket": SRC.bucket, "Key": SRC.key},
        "CopySourceIfMatch": f'"{"b" * 32}"'})
    result = copier.copy(CopyItem(SRC, DST, 1, listed, check_destination=False))
    assert (result.status, result.error_code, result.attempts) == (FAILED, "AccessDenied", 1)
    stub.assert_no_pending_responses()


def test_part_size_grows_to_fit_ten_thousand_parts():
    config = TransferConfig(part_size=8 * MiB)
    assert config.part_size_for(10 * MiB) == 8 * MiB
    size = 200 * 1024 * MiB  # 200 GiB
    assert size / config.part_size_for(size) <= 10_000
    assert config.is_multipart(6 * 1024 * MiB)  # over 5 GiB: never a single CopyObject


def body(data: bytes) -> dict:
    from botocore.response import StreamingBody

    return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)}


def expect_range_reads(stub, corrupt_part=None):
    """Source (pinned to its ETag) then copy, range by range."""
    for number, first, last in RANGES:
        data = bytes([number]) * (last - first + 1)
        stub.add_response("get_object", body(data), {
            "Bucket": SRC.bucket, "Key": SRC.key, "Range": f"bytes={first}-{last}", "IfMatch": f'"{ETAG}"'})
        copied = b"X" + data[1:] if number == corrupt_part else data
        stub.add_response("get_object", body(copied), {
            "Bucket": DST.bucket, "Key": DST.key, "Range": f"bytes={first}-{last}"})


def test_etag_that_cannot_match_is_checked_by_content(stubbed):
    stub, copier = stubbed
    expect_head_and_create(stub)
    expect_parts_and_complete(stub, "another-scheme-3")
    expect_range_reads(stub)
    result = copier.copy(item())
    assert result.status == COPIED
    assert result.detail.endswith("content verified by MD5 of every range")
    stub.assert_no_pending_responses()


def test_copy_whose_content_differs_is_deleted_and_failed(stubbed):
    stub, copier = stubbed
    expect_head_and_create(stub)
    expect_parts_and_complete(stub, "another-scheme-3")
    expect_range_reads(stub, corrupt_part=2)
    stub.add_response("delete_object", {}, {"Bucket": DST.bucket, "Key": DST.key})
    result = copier.copy(item())
    assert (result.status, result.error_code) == (FAILED, "ChecksumMismatch")
    assert f"bytes {5 * MiB}-{10 * MiB - 1}" in result.error and "the copy was deleted" in result.error
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("etag, size, expected", [
    ("a" * 32, 4 * 1024 * MiB, 1),          # single-part source up to 5 GiB: one CopyObject
    ("a" * 32, 6 * 1024 * MiB, 96),         # over 5 GiB: our 64 MiB parts
    ("a" * 32 + "-7", 400 * MiB, 7),        # the source's own part count
    ("a" * 32, 100, 1),
])
def test_planned_parts_follow_the_layout_table(etag, size, expected):
    from s3flow.layout import planned_parts

    assert planned_parts(TransferConfig(), size, etag) == expected


def test_part_copies_always_applies_below_the_threshold_and_ignore_layout_says_why():
    from s3flow.copy import _why_single
    from s3flow.layout import planned_parts

    small_multipart = ("a" * 32 + "-4", 64 * MiB)
    assert planned_parts(TransferConfig(), small_multipart[1], small_multipart[0]) == 1  # auto: one copy
    assert planned_parts(TransferConfig(part_copies="always"), small_multipart[1], small_multipart[0]) == 4
    source = ObjectInfo(SRC, small_multipart[1], small_multipart[0], 0.0)
    assert "--ignore-source-layout" in _why_single(TransferConfig(keep_source_layout=False), source)


def test_source_part_size_must_describe_the_object():
    from s3flow.layout import source_part_size

    assert source_part_size(12 * MiB, 3, 5 * MiB) == 5 * MiB
    assert source_part_size(12 * MiB, 2, 5 * MiB) is None   # 2 x 5 MiB cannot hold 12 MiB
    assert source_part_size(12 * MiB, 3, 1 * MiB) is None   # parts under 5 MiB are not S3's
    assert source_part_size(12 * MiB, 3, None) is None


def test_single_copy_whose_etag_cannot_match_is_checked_by_content(stubbed):
    """An SSE-KMS destination's ETag is not an MD5: the bytes are compared instead."""
    stub, copier = stubbed
    data = b"ACGT" * 25
    listed = ObjectInfo(SRC, len(data), "b" * 32, 0.0)
    stub.add_response("copy_object", {"CopyObjectResult": {"ETag": '"kms-not-an-md5"',
                                                           "ChecksumCRC32C": "crc=="}})
    stub.add_response("get_object", body(data), {"Bucket": SRC.bucket, "Key": SRC.key,
                                                 "Range": "bytes=0-99", "IfMatch": f'"{"b" * 32}"'})
    stub.add_response("get_object", body(data[:-1] + b"!"), {"Bucket": DST.bucket, "Key": DST.key,
                                                             "Range": "bytes=0-99"})
    stub.add_response("delete_object", {}, {"Bucket": DST.bucket, "Key": DST.key})
    result = copier.copy(CopyItem(SRC, DST, 1, listed, check_destination=False))
    assert (result.status, result.error_code) == (FAILED, "ChecksumMismatch")
    stub.assert_no_pending_responses()


def test_other_stores_get_one_copyobject_per_multipart_source_while_it_keeps_the_etag():
    stub, copier = stubbed_copier("http://127.0.0.1:9")  # SeaweedFS, MinIO...: not AWS
    listed = ObjectInfo(SRC, SIZE, ETAG, 0.0)  # a 3-part source, above the 5 MiB threshold
    keys = ["copy/a.bam", "copy/b.bam"]
    with stub:
        for key in keys:
            stub.add_response("copy_object", {"CopyObjectResult": {"ETag": f'"{ETAG}"'}}, {
                "Bucket": DST.bucket, "Key": key, "CopySource": {"Bucket": SRC.bucket, "Key": SRC.key},
                "CopySourceIfMatch": f'"{ETAG}"'})
        results = [copier.copy(CopyItem(SRC, ObjectRef(DST.bucket, key), 1, listed, check_destination=False))
                   for key in keys]
        stub.assert_no_pending_responses()
    copier.close()
    assert [(r.status, r.parts, r.attempts) for r in results] == [(COPIED, 1, 1)] * 2
    assert results[0].detail == ("CopyObject (instead of part copies: this store keeps the ETag of a "
                                 "single copy); ETag matches the source")


def test_part_copies_always_copies_in_parts_on_any_store():
    stub, copier = stubbed_copier("http://127.0.0.1:9", part_copies="always")
    with stub:
        expect_head_and_create(stub)
        expect_parts_and_complete(stub, ETAG)
        result = copier.copy(item())
        stub.assert_no_pending_responses()
    copier.close()
    assert (result.status, result.parts) == (COPIED, 3)


def test_where_a_single_copy_loses_the_etag_the_file_is_copied_again_in_parts():
    stub, copier = stubbed_copier("http://127.0.0.1:9")
    listed = ObjectInfo(SRC, SIZE, ETAG, 0.0)
    with stub:
        stub.add_response("copy_object", {"CopyObjectResult": {"ETag": '"' + "c" * 32 + '"'}}, {
            "Bucket": DST.bucket, "Key": DST.key, "CopySource": {"Bucket": SRC.bucket, "Key": SRC.key},
            "CopySourceIfMatch": f'"{ETAG}"'})
        expect_head_and_create(stub)
        expect_parts_and_complete(stub, ETAG)
        result = copier.copy(CopyItem(SRC, DST, 1, listed, check_destination=False))
        stub.assert_no_pending_responses()
    copier.close()
    assert (result.status, result.parts) == (COPIED, 3)  # the destination's ETag is the source's
    assert result.detail == ("multipart, 3 parts (source layout); ETag matches the source "
                             "(a single CopyObject lost the ETag on this store)")
