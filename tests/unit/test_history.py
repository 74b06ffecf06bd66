"""How file results become grouped history events: every row sent once, in the event of
its status and destination group, within Prefect's limits."""
from __future__ import annotations

import threading

from s3flow.flows.history import GROUPS, ROWS_PER_EVENT, History, group_of
from s3flow.record import COPIED, FAILED, FileResult


def copied(source: str, destination: str, status: str = COPIED) -> FileResult:
    return FileResult(source=source, destination=destination, status=status, size=1, started=1.0, ended=2.0)


def record(results: list[FileResult]) -> list[dict]:
    sent: list[dict] = []
    history = History("run-1", send=sent.extend)
    for start in range(0, len(results), 500):  # as batches finish
        history.add([result.row() for result in results[start:start + 500]])
    history.close()
    return sent


def test_a_prefix_sync_needs_few_events_and_every_row_is_in_its_groups_event():
    results = [copied(f"s3://src/run-7/f{n}.fq", f"s3://dst/run-7/f{n}.fq") for n in range(3000)]
    results[17] = copied(results[17].source, results[17].destination, FAILED)
    events = record(results)

    rows = [(e["event"], row["destination"]) for e in events for row in e["payload"]["files"]]
    assert sorted(rows) == sorted((f"s3flow.files.{r.status}", r.destination) for r in results)
    for event in events:
        files = event["payload"]["files"]
        assert len(files) <= ROWS_PER_EVENT
        assert {group_of(f["destination"]) for f in files} == {event["resource"]["prefect.resource.id"]}
        sources = [r["prefect.resource.id"] for r in event["related"] if r["prefect.resource.role"] == "source"]
        assert sources == [group_of(files[0]["source"])]  # names kept: one source group
        assert {"prefect.resource.id": "prefect.flow-run.run-1", "prefect.resource.role": "flow-run"} \
            in event["related"]
    # 3,000 files, not 3,000 events: the 64 groups fill and are sent, the rest at the end
    assert len(events) < 3000 / ROWS_PER_EVENT + 2 * GROUPS


def test_renamed_sources_stay_within_prefects_related_resource_limit():
    results = [copied(f"s3://src/dir-{n}/x", "s3://dst/all/x") for n in range(250)]  # one group, 250 sources
    events = record(results)
    assert sum(len(e["payload"]["files"]) for e in events) == 250
    assert all(len(e["related"]) <= 100 for e in events)
    for event in events:
        named = {group_of(f["source"]) for f in event["payload"]["files"]}
        assert named == {r["prefect.resource.id"] for r in event["related"] if r["prefect.resource.role"] == "source"}


def test_groups_are_folders_and_name_buckets_and_versions_go_with_their_object():
    assert group_of("s3://b/a/c/name.txt").startswith("s3flow.objects.s3://b/a/c/#")
    assert group_of("s3://b/a/name.txt?versionId=3") == group_of("s3://b/a/name.txt")
    assert len({group_of(f"s3://b/a/{n}") for n in range(5000)}) == GROUPS


def test_a_buffered_row_is_sent_within_the_flush_time_without_more_batches():
    sent: list[dict] = []
    done = threading.Event()
    history = History("run-1", send=lambda events: (sent.extend(events), done.set()), flush_seconds=0.2)
    history.add([copied("s3://src/a/x.bam", "s3://dst/a/x.bam").row()])  # one slow batch's only file
    assert not sent  # buffered, in case more rows of its group come
    assert done.wait(10)  # and sent on time though no batch followed
    assert [row["destination"] for e in sent for row in e["payload"]["files"]] == ["s3://dst/a/x.bam"]
    history.close()
    assert len(sent) == 1  # nothing twice
