"""A transfer split into shards: run by two real process workers on one pool, and
(in-process) a sharded sync with deletions whose key ranges must fit exactly."""
from __future__ import annotations

import os
import re

from s3flow.flows.shard import shards_of, transfer_shard
from s3flow.flows.transfer import artifact_base, open_transfer, transfer_manifest
from tests.conftest import listing
from tests.integration.test_faults import fill
from tests.integration.test_transfer_flow import artifacts, table_rows


def test_two_workers_share_a_sharded_transfer_and_every_object_arrives(
        start_worker, seaweed, buckets, prefect_api, s3_env, write_manifest, tmp_path):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = fill(c, src, 1000)
    c.put_object(Bucket=src, Key="single/report.pdf", Body=b"report")
    objects_single = {"single/report.pdf": b"report"}
    manifest = write_manifest(f"s3://{src}/reads/,s3://{dst}/reads/\n"
                              f"s3://{src}/single/report.pdf,s3://{dst}/single/report.pdf\n", "sharded.csv")
    for _ in range(2):  # one flow run at a time each: both must work for five shards
        start_worker(seaweed.env(), limit=1)

    state = transfer_manifest(manifest=manifest, shard_files=200, return_state=True)

    assert state.is_completed(), state.message
    assert listing(c, dst) == {**objects, **objects_single}
    base = artifact_base(manifest)
    shards = table_rows(artifacts(f"{base}-shards")[0])
    assert len(shards) == 6 and {row["state"] for row in shards} == {"Completed"}  # 1001 files / 200
    assert sum(row["files"] for row in shards) == sum(row["copied"] for row in shards) == 1001
    for row in shards:  # each shard keeps its own per-file table
        files = table_rows(artifacts(f"{base}-shard-{row['shard']:04d}-files")[0])
        assert len(files) == row["files"] and {f["status"] for f in files} == {"copied"}
    summary = artifacts(f"{base}-summary")[0].data
    assert re.search(r"\| Files \| 1001 \|", summary) and re.search(r"\| Copied \| 1001 \|", summary)
    logs = [(tmp_path / f"worker-{n}.log").read_text() for n in range(2)]
    took = [{row["flow_run"] for row in shards if row["flow_run"] in log} for log in logs]
    assert took[0] and took[1], "both workers took shards"
    assert took[0] | took[1] == {row["flow_run"] for row in shards}


def test_shards_cover_every_object_once_and_skip_what_is_already_there(
        seaweed, buckets, prefect_api, s3_env, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    objects = {f"p/{name}": os.urandom(50) for name in
               [f"{i:03d}" for i in range(26)] + ["d/x", "d x", "d/y/z", "e"]}  # not all in key order
    for key, body in objects.items():
        c.put_object(Bucket=src, Key=key, Body=body)
    c.copy_object(Bucket=dst, Key="p/003", CopySource={"Bucket": src, "Key": "p/003"})  # already there
    c.put_object(Bucket=dst, Key="p/010", Body=b"an older version")  # changed since
    manifest = write_manifest(f"s3://{src}/p/,s3://{dst}/p/\n", "sharded-sync.csv")
    job = open_transfer(manifest, {})

    shards = list(shards_of(job, 7))
    states = [transfer_shard(manifest=manifest, rows=rows, number=number, parent_base="sync-test",
                             options={}, return_state=True) for number, rows in enumerate(shards, 1)]

    assert len(shards) == 5  # 30 objects: 7, 7, 7, 7 and the last 2
    assert all(state.is_completed() for state in states)
    assert listing(c, dst) == objects
    results = [state.result() for state in states]
    assert sum(r["files"] for r in results) == 30 and sum(r["skipped"] for r in results) == 1
