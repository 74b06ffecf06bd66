"""`s3flow history`: every run that touched an object, from Prefect's own records."""
from __future__ import annotations

import json
import time

import pytest

from s3flow.cli import main


@pytest.fixture()
def run(prefect_api, s3_env, capsys):
    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_history_lists_every_run_that_touched_an_object(seaweed, buckets, run, write_manifest):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    c.put_object(Bucket=src, Key="run-7/sample.cram", Body=b"CRAM" * 100)
    for n in range(150):  # neighbours: they share the folder, and some the name group, of sample.cram
        c.put_object(Bucket=src, Key=f"run-7/read-{n:03d}.fq", Body=b"@")
    manifest = write_manifest(f"s3://{src}/run-7/,s3://{dst}/run-7/\n"
                              f"s3://{src}/lost/absent.cram,s3://{dst}/lost/absent.cram\n")
    first = json.loads(run("transfer", manifest, "--json")[1])
    second = json.loads(run("transfer", manifest, "--json")[1])
    assert (first["copied"], second["skipped"], second["failed"]) == (151, 151, 1)

    # Prefect's event persister writes events in batches (every 5 s): poll a little.
    deadline = time.monotonic() + 30
    while True:
        code, out, _ = run("history", f"s3://{dst}/run-7/sample.cram", "--json")
        entries = json.loads(out)
        if (len(entries) >= 2 and len(json.loads(run("history", f"s3://{dst}/lost/absent.cram", "--json")[1])) >= 2) \
                or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 0
    assert [(e["status"], e["role"]) for e in entries] == [("skipped", "destination"), ("copied", "destination")]
    assert {e["trigger"] for e in entries} == {"manual: s3flow transfer"}
    assert len({e["flow_run_id"] for e in entries}) == 2  # two runs, newest first
    assert entries[0]["time"] > entries[1]["time"]
    copied = entries[1]
    assert copied["source"] == f"s3://{src}/run-7/sample.cram" and copied["size"] == 400
    assert copied["etag"] == c.head_object(Bucket=src, Key="run-7/sample.cram")["ETag"].strip('"')

    as_source = json.loads(run("history", f"s3://{src}/run-7/sample.cram", "--json")[1])
    assert [(e["status"], e["role"]) for e in as_source] == [("skipped", "source"), ("copied", "source")]
    neighbour = json.loads(run("history", f"s3://{src}/run-7/read-042.fq", "--json")[1])
    assert [(e["status"], e["destination"]) for e in neighbour] == [
        ("skipped", f"s3://{dst}/run-7/read-042.fq"), ("copied", f"s3://{dst}/run-7/read-042.fq")]

    code, out, _ = run("history", f"s3://{dst}/lost/absent.cram")
    assert code == 0 and out.count("FAILED") == 2 and "error: NoSuchKey" in out
    assert "started by manual: s3flow transfer" in out

    scanned = json.loads(run("history", f"s3://{dst}/run-7/sample.cram", "--json", "--scan-artifacts")[1])
    assert [e["status"] for e in scanned] == ["skipped", "copied"]  # the slow path agrees

    code, out, _ = run("history", f"s3://{dst}/run-7/never.cram")
    assert code == 1 and "no recorded run" in out
    code, _, err = run("history", f"s3://{dst}/run-7/")
    assert code == 2 and "is a prefix" in err
