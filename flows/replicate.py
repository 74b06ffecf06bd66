"""Replication flows: objects created in a watched bucket, copied into several buckets.

- `replicate-objects`: a batch of objects (an `s3flow.objects.created` event from
  `s3flow bridge`, which groups objects created close together): one run, one transfer
  on the engine's pool. The path for bursts: 1,000 objects are a few runs, not 1,000.
- `replicate-object`: one object (an `aws.s3.object.created` event, e.g. from a Prefect
  Cloud webhook, or by hand: `prefect deployment run 'replicate-object/...' --param ...`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from prefect.states import Failed

from s3flow.blocks.credentials import endpoint_from_block
from s3flow.config import TransferConfig
from s3flow.errors import InputError
from s3flow.flows.history import History, run_trigger, stamped
from s3flow.flows.live import Recorder
from s3flow.flows.notify import notify_failure, run_link
from s3flow.flows.transfer import CONCURRENCY_LIMIT, _slug, ensure_concurrency_limit, run_transfer
from s3flow.options import config_from, default
from s3flow.record import FileResult
from s3flow.replicate import Outcome, batch_rows, check_request, replicate
from s3flow.transfer import Transfer

RETRIES, BACKOFF_BASE = 3, 2.0  # per copy: 3 retries, full-jitter backoff from 2 s
BATCH_CONCURRENCY = 64  # requests in flight for a batch of objects


def replication_key(bucket: str, key: str) -> str:
    """The artifact key of one source object's replications: every run for it adds to
    one history in the UI (Artifacts, or `prefect artifact inspect KEY`)."""
    digest = hashlib.sha1(f"{bucket}/{key}".encode()).hexdigest()[:8]
    return f"replicate-{_slug(bucket)[:30]}-{_slug(key)[-40:]}-{digest}".replace("--", "-")


def destinations_list(value: list[str] | str) -> list[str]:
    """A list, or one comma-separated string (as environment variables give it)."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return [str(name).strip() for name in value]


@task(name="copy-to-destinations", cache_policy=NO_CACHE)
def copy_to_destinations(
    config: TransferConfig,
    source_bucket: str,
    source_key: str,
    destination_buckets: list[str],
    destination_key: str | None,
    trigger: str = "",
) -> list[FileResult]:
    """The replication on the engine's one transfer loop; each copy's result is recorded
    (file-result table, history events) the moment it is decided."""
    recorder = Recorder(History(str(flow_run.id or "")), trigger, None, None)
    try:
        results = replicate(
            config, source_bucket, source_key, destination_buckets, destination_key, on_result=recorder.add
        )
    finally:
        recorder.close()
    return stamped(results, trigger)


@flow(name="replicate-object")
def replicate_object(
    source_bucket: str,
    source_key: str,
    destination_buckets: list[str] | str,
    destination_key: str | None = None,
    max_concurrency: int = 10,
    source_credentials: str | None = None,
    destination_credentials: str | None = None,
    notification_block: str | None = None,
    concurrency_limit: str = CONCURRENCY_LIMIT,
    multipart_threshold_mib: int = default("multipart_threshold_mib"),
    part_size_mib: int = default("part_size_mib"),
    checksum_algorithm: str | None = default("checksum_algorithm"),
    requester_pays: bool = default("requester_pays"),
):
    """Copy s3://source_bucket/source_key into every destination bucket, in parallel.

    Ends Completed when every copy succeeded (an identical object already there counts),
    else Failed, after one notification through `notification_block`.

    Args:
        source_bucket: The bucket the object is in.
        source_key: The object's key (decoded, as the bridge's events carry it).
        destination_buckets: Buckets to copy into: a list, or one comma-separated string.
        destination_key: The key in each destination; default: the source key.
        max_concurrency: Copies (and S3 requests) in flight at once.
        source_credentials: AwsCredentials block for the source; empty: the environment's.
        destination_credentials: AwsCredentials block for the destinations.
        notification_block: SnsNotification block to report failures to; empty: none.
        concurrency_limit: Global concurrency limit all s3flow runs share (created if missing).
        multipart_threshold_mib: Objects larger than this are copied in parts.
        part_size_mib: Part size of multipart copies.
        checksum_algorithm: Checksum S3 computes on each copy, recorded ("none": none).
        requester_pays: The source bucket is requester-pays: this replication pays for its reads.
    """
    logger = get_run_logger()
    destinations = destinations_list(destination_buckets)
    source = f"s3://{source_bucket}/{source_key}"
    key = replication_key(source_bucket or "none", source_key or "none")
    try:
        check_request(source_bucket, source_key, destinations, destination_key)
        config = _config(
            max_concurrency=max_concurrency,
            multipart_threshold_mib=multipart_threshold_mib,
            part_size_mib=part_size_mib,
            checksum_algorithm=checksum_algorithm,
            requester_pays=requester_pays,
            source_credentials=source_credentials,
            destination_credentials=destination_credentials,
        )
    except InputError as exc:
        message = f"invalid replication request: {exc.describe()}"
        unsent = notify_failure(
            notification_block,
            f"replicate-object: invalid request for {source}"[:80],
            _body(source, message, None, key),
        )
        return Failed(message=message + (f"; {unsent}" if unsent else ""))

    started = datetime.now(UTC)
    create_markdown_artifact(
        key=key,
        description=f"Replication of {source} started",
        markdown="\n".join(
            [
                f"# Replication of `{source}` started",
                "",
                f"- flow run: {flow_run.id} ({run_link()})",
                f"- destinations: {', '.join(f'`{d}`' for d in destinations)}",
                f"- started: {started.isoformat(timespec='seconds')}",
            ]
        ),
    )

    slots = min(config.max_concurrency, ensure_concurrency_limit(concurrency_limit))
    with concurrency(concurrency_limit, occupy=max(slots, 1)):
        results = copy_to_destinations(
            replace(config, max_concurrency=max(slots, 1)),
            source_bucket,
            source_key,
            destinations,
            destination_key,
            run_trigger(),
        )
    outcome = Outcome.of(source, results)
    create_markdown_artifact(
        key=key,
        description=f"Replication of {source}: {outcome.headline()}",
        markdown=_outcome_markdown(outcome, results, started),
    )
    logger.info(outcome.headline())
    result = outcome.to_json()
    if not outcome.failed:
        return result
    for bucket, error in outcome.errors.items():
        logger.warning("FAILED %s -> %s: %s", source, bucket, error)
    subject = f"replicate-object: {outcome.failed} of {outcome.total} copies of {source} failed"
    unsent = notify_failure(notification_block, subject, _body(source, outcome.headline(), outcome, key))
    message = f"{outcome.failed} of {outcome.total} copies failed: " + "; ".join(
        f"{bucket}: {error}" for bucket, error in outcome.errors.items()
    )
    return Failed(message=message + (f"; {unsent}" if unsent else ""), data=result)


def _config(**values) -> TransferConfig:
    """A replication's TransferConfig: its options, with the replication's retries."""
    return config_from({**values, "max_attempts": RETRIES + 1}, endpoint_from_block, backoff_base=BACKOFF_BASE)


def _outcome_markdown(outcome: Outcome, results: list[FileResult], started: datetime) -> str:
    lines = [
        f"# Replication of `{outcome.source}`",
        "",
        f"**{outcome.succeeded} of {outcome.total} destinations succeeded, {outcome.failed} failed** "
        f"(flow run {flow_run.id}, started {started.isoformat(timespec='seconds')})",
        "",
        "| Destination | Status | Attempts | Error or detail |",
        "|---|---|---:|---|",
    ]
    for r in results:
        lines.append(f"| `{r.destination}` | {r.status} | {r.attempts} | {(r.error or r.detail).replace('|', '/')} |")
    return "\n".join(lines)


def _body(source: str, headline: str, outcome: Outcome | None, key: str) -> str:
    lines = [headline, "", f"Source: {source}"]
    if outcome is not None:
        lines += [f"Destinations: {outcome.total} ({outcome.succeeded} succeeded, {outcome.failed} failed)"]
        if outcome.succeeded_buckets:
            lines.append(f"Succeeded: {', '.join(outcome.succeeded_buckets)}")
        lines += ["Failed:", *(f"  - {bucket}: {error}" for bucket, error in outcome.errors.items())]
    lines += ["", f"Flow run: {flow_run.id}", f"Link: {run_link()}", f"Artifact: {key}"]
    return "\n".join(lines)


@flow(name="replicate-objects")
def replicate_objects(
    source_bucket: str,
    objects: list[dict] | str,
    destination_buckets: list[str] | str,
    max_concurrency: int = BATCH_CONCURRENCY,
    source_credentials: str | None = None,
    destination_credentials: str | None = None,
    notification_block: str | None = None,
    concurrency_limit: str = CONCURRENCY_LIMIT,
    multipart_threshold_mib: int = default("multipart_threshold_mib"),
    part_size_mib: int = default("part_size_mib"),
    checksum_algorithm: str | None = default("checksum_algorithm"),
    requester_pays: bool = default("requester_pays"),
    report: str | None = default("report"),
):
    """Copy many objects of one bucket, created close together, into every destination
    bucket: one run for a batch of creation events (`s3flow bridge` groups them into one
    `s3flow.objects.created` event), copied on the engine's pool as one transfer.

    Each object keeps its own result per destination (the run's file tables, history
    events, status, report); a failed copy fails alone, and the notification groups the
    failures by cause and bucket. Each result records the replication lag, from the
    object's creation event to its copy; the summary gives p50 and p99.

    Args:
        source_bucket: The bucket the objects are in.
        objects: The objects: a list (or its JSON text) of {"key", "version_id", "event_time"}.
        destination_buckets: Buckets to copy into: a list, or one comma-separated string.
        max_concurrency: S3 requests in flight at once.
        source_credentials: AwsCredentials block for the source; empty: the environment's.
        destination_credentials: AwsCredentials block for the destinations.
        notification_block: SnsNotification block to report failures to; empty: none.
        concurrency_limit: Global concurrency limit all s3flow runs share (created if missing).
        multipart_threshold_mib: Objects larger than this are copied in parts.
        part_size_mib: Part size of multipart copies.
        checksum_algorithm: Checksum asked for on each copy (empty: keep the source's).
        requester_pays: The source bucket is requester-pays: this replication pays for its reads.
        report: s3://bucket/prefix/ for a completion report of the run; empty: none.
    """
    started = time.time()
    destinations = destinations_list(destination_buckets)
    listed = json.loads(objects) if isinstance(objects, str) else list(objects)
    source = f"s3://{source_bucket}"
    try:
        rows = batch_rows(source_bucket, listed, destinations)
        config = _config(
            max_concurrency=max_concurrency,
            multipart_threshold_mib=multipart_threshold_mib,
            part_size_mib=part_size_mib,
            checksum_algorithm=checksum_algorithm,
            requester_pays=requester_pays,
            source_credentials=source_credentials,
            destination_credentials=destination_credentials,
            report=report,
        )
        transfer = Transfer.open(f"{source} ({len(listed)} objects created)", config, rows=rows)
    except InputError as exc:
        message = f"invalid replication request: {exc.describe()}"
        unsent = notify_failure(
            notification_block,
            f"replicate-objects: invalid request for {source}"[:80],
            "\n".join([message, "", f"Flow run: {flow_run.id}", f"Link: {run_link()}"]),
        )
        return Failed(message=message + (f"; {unsent}" if unsent else ""))
    get_run_logger().info(
        "replicating %d objects of %s into %s", len(rows) // max(len(destinations), 1), source, ", ".join(destinations)
    )
    return run_transfer(
        transfer,
        f"replicate-{_slug(source_bucket)[:40]}",
        started,
        concurrency_limit=concurrency_limit,
        prices=None,
        notification_block=notification_block,
        trigger=run_trigger(),
    )
