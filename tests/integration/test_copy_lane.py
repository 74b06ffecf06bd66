"""The copy lane (CopyObject over awscrt) against SeaweedFS, through the fault proxy,
which shows which client sent each request: awkward keys, S3's refusals, transient
faults handed back to botocore, and a lane that cannot work giving up on its own."""
from __future__ import annotations

import os
from collections import Counter

from s3flow.flows.transfer import artifact_base, transfer_manifest
from s3flow.storage import LANE_AGENT
from tests.conftest import listing
from tests.faultproxy import Faults
from tests.integration.test_faults import artifacts, fill, table_rows

AWKWARD = ["with space.fq", "plus+equals=.fq", "percent%20.fq", "amp&and.fq", "ünïcødé/ß.fq",
           "semi;colon,comma.fq", "tilde~star*.fq", "paren(1).fq",
           "q?mark.fq", "hash#.fq"]  # SeaweedFS refuses "../" and folds "//" (moto test: test_transfer_cli)


def copies_by(proxy, dst: str) -> Counter:
    """CopyObject requests into dst per client: 'lane' or 'botocore'."""
    return Counter("lane" if seen.agent == LANE_AGENT else "botocore" for seen in proxy.seen
                   if seen.method == "PUT" and seen.bucket == dst and seen.copy_source)


def test_awkward_keys_are_copied_by_the_lane_in_one_request_each(seaweed, buckets, proxy, prefect_api,
                                                                write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = {f"odd/{key}": os.urandom(100) for key in AWKWARD}
    for key, body in objects.items():
        c.put_object(Bucket=src, Key=key, Body=body)
    manifest = write_manifest(f"s3://{src}/odd/,s3://{dst}/odd/\n", "awkward.csv")

    state = transfer_manifest(manifest=manifest, return_state=True)

    assert state.is_completed(), state.message
    assert listing(c, dst) == objects
    assert copies_by(proxy, dst) == Counter({"lane": len(objects)})
    rows = table_rows(artifacts(f"{artifact_base(manifest)}-files")[0])
    assert {row["status"] for row in rows} == {"copied"}
    assert all(row["attempts"] == 1 and row["detail"] == "CopyObject; ETag matches the source"
               for row in rows)


def test_lane_failures_go_back_to_botocore_and_every_object_arrives(seaweed, buckets, proxy,
                                                                   prefect_api, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 300)
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", "fallback.csv")
    proxy.faults = Faults(rate=0.2, seed=11)

    state = transfer_manifest(manifest=manifest, max_attempts=12, return_state=True)

    assert state.is_completed(), state.message
    assert listing(c, dst) == objects
    by = copies_by(proxy, dst)
    assert by["lane"] >= 300 and by["botocore"] > 0  # the lane took all, botocore the faulted ones
    rows = table_rows(artifacts(f"{artifact_base(manifest)}-files")[0])
    retried = [row for row in rows if row["attempts"] > 1]
    assert retried and all(row["status"] == "copied" for row in rows)
    faulted = {seen.key for seen in proxy.seen if seen.fault and seen.agent == LANE_AGENT}
    assert {row["destination"].split("/", 3)[3] for row in retried} >= faulted - {""}


def test_refused_copies_fail_at_once_and_are_not_retried(seaweed, buckets, proxy, prefect_api,
                                                         write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    fill(c, src, 20, "data/")
    fill(c, src, 3, "data/secret/")
    manifest = write_manifest(f"s3://{src}/data/,s3://{dst}/data/\n", "refused.csv")
    proxy.faults = Faults(denied=("secret/",))

    transfer_manifest(manifest=manifest, return_state=True)

    secret_copies = [seen for seen in proxy.seen if seen.method == "PUT" and "secret/" in seen.key]
    assert len(secret_copies) == 3 and all(seen.agent == LANE_AGENT for seen in secret_copies)


def test_a_lane_that_cannot_work_gives_up_and_botocore_copies_everything(
        seaweed, buckets, proxy, prefect_api, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 200)
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n", "broken-lane.csv")
    proxy.faults = Faults(bad_signature=LANE_AGENT)  # as if the lane signed wrongly for this store

    state = transfer_manifest(manifest=manifest, return_state=True)

    assert state.is_completed(), state.message
    assert listing(c, dst) == objects
    by = copies_by(proxy, dst)
    assert by["botocore"] == 200 and by["lane"] < 200  # it stopped trying part-way
    rows = table_rows(artifacts(f"{artifact_base(manifest)}-files")[0])
    assert {row["status"] for row in rows} == {"copied"} and len(rows) == 200
