"""Replication requests are checked before anything runs; outcomes aggregate per bucket."""
import pytest

from s3flow.blocks.sns import sns_subject
from s3flow.errors import InputError
from s3flow.flows.replicate import destinations_list, replication_key
from s3flow.record import COPIED, FAILED, SKIPPED, FileResult
from s3flow.replicate import Outcome, bucket_problem, check_request


@pytest.mark.parametrize("name, ok", [
    ("global-builds", True), ("a.b-c", True), ("ab", False), ("Global", False), ("a_b", False),
    ("-ab", False), ("a..b", False), ("192.168.1.1", False), ("x" * 64, False), ("", False),
])
def test_bucket_names_follow_s3_rules(name, ok):
    assert (bucket_problem(name) is None) == ok


def test_every_problem_of_a_request_is_named_with_its_field():
    with pytest.raises(InputError) as caught:
        check_request("global-builds", "", ["Region_A", "global-builds", "b-bucket", "b-bucket"], None)
    text = caught.value.describe()
    assert "source_key: is empty" in text
    assert "destination_buckets[0]: 'Region_A' must be 3 to 63 characters" in text
    assert "the source bucket 'global-builds' is among the destinations" in text
    assert "b-bucket named more than once" in text
    with pytest.raises(InputError, match="destination_buckets: needs at least one bucket"):
        check_request("global-builds", "build-1.zip", [], None)
    with pytest.raises(InputError, match="is a prefix, not an object"):
        check_request("global-builds", "builds/", ["region-a"], None)
    # the source bucket may be a destination when the key differs
    check_request("global-builds", "build-1.zip", ["global-builds"], "latest/build.zip")


def test_outcome_counts_skipped_as_there_and_keeps_each_error():
    results = [FileResult("s3://src/k", "s3://region-a/k", COPIED),
               FileResult("s3://src/k", "s3://region-b/k", SKIPPED),
               FileResult("s3://src/k", "s3://region-c/k", FAILED, error_code="NoSuchBucket", error_message="gone")]
    outcome = Outcome.of("s3://src/k", results)
    assert outcome.to_json() == {
        "source": "s3://src/k", "total": 3, "succeeded": 2, "failed": 1,
        "succeeded_buckets": ["region-a", "region-b"], "failed_buckets": ["region-c"],
        "errors": {"region-c": "NoSuchBucket: gone"}}


def test_event_friendly_inputs():
    assert destinations_list("region-a, region-b,") == ["region-a", "region-b"]
    assert destinations_list(["region-a"]) == ["region-a"]
    key = replication_key("global-builds", "builds/Build 123.zip")
    assert key == replication_key("global-builds", "builds/Build 123.zip")
    assert key != replication_key("global-builds", "builds/build-123.zip")
    assert key.startswith("replicate-global-builds-builds-build-123-zip-")
    assert sns_subject("[FAILED] café\nline " + "x" * 200).isascii()
    assert len(sns_subject("x" * 200)) < 100
