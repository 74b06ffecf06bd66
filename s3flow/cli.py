"""The `s3flow` command: transfer, plan, verify, status, history, uploads, bridge, setup.

Exit codes: 0 every file copied or skipped (plan: nothing would fail; verify:
no difference; uploads: every abort done); 1 some file failed, the transfer was
cancelled (the UI, `prefect flow-run cancel`, Ctrl-C), or the run failed for another
reason (plan: some file would fail; verify: a difference); 2 bad input or a bad
environment (manifest, options, credentials, a missing profile, an endpoint URL
without a scheme, an unreachable endpoint or Prefect API, an unknown run id), one
line on stderr, with nothing copied; 130 interrupted (Ctrl-C) before a transfer
started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors are bad input too: exit 2
        self.print_usage(sys.stderr)
        print(f"s3flow: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="s3flow", description="Server-side S3 transfers as Prefect flows.")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    transfer = commands.add_parser(
        "transfer",
        help="copy what a manifest lists",
        description="Run the transfer-manifest flow in this process against the configured "
        "Prefect API (PREFECT_API_URL; a temporary local one if unset).",
    )
    _manifest_options(transfer, "transfer")
    plan = commands.add_parser(
        "plan",
        help="what a transfer would copy, skip and delete, and its request cost",
        description="List and HEAD only; nothing is copied or deleted, no Prefect run is made.",
    )
    _manifest_options(plan, "plan")
    verify = commands.add_parser(
        "verify",
        help="compare sources and destinations without copying (exit 1 on differences)",
        description="Every object the manifest names is compared with its destination by the sync "
        "rule (size, ETag, modification time); nothing is copied or deleted. With "
        "--delete, destination objects the source lacks count as differences too.",
    )
    _manifest_options(verify, "verify")
    status = commands.add_parser(
        "status",
        help="a transfer's file-wise status, while it runs or after",
        description="Read from the Prefect API (PREFECT_API_URL) what a transfer-manifest run did "
        "with every file: counts, bytes, rate, and the files.",
    )
    status.add_argument("flow_run_id", help="the flow run's id (printed by `s3flow transfer`)")
    status.add_argument("--json", action="store_true", help="print one JSON object, rows included")
    status.add_argument("--all", action="store_true", help="list every file, not only failures")
    history = commands.add_parser(
        "history",
        help="every run that copied, skipped, failed or deleted an object",
        description="Read from the Prefect API (PREFECT_API_URL) every recorded file result with "
        "this object as source or destination, newest first: time, flow run, what "
        "started the run, status, attempts, size, ETag, checksum, error. Exit 1 if none.",
    )
    history.add_argument("uri", help="s3://bucket/key")
    history.add_argument("--json", action="store_true", help="print one JSON list")
    history.add_argument("--limit", type=int, default=1000, help="at most this many entries (default 1000)")
    history.add_argument(
        "--scan-artifacts",
        action="store_true",
        help="read every per-file table instead of the event index: slower, and "
        "not bound by the server's event retention",
    )
    history.add_argument(
        "--reports",
        metavar="S3_PREFIX",
        help="answer from the completion reports under this prefix alone (transfer --report), "
        "with no Prefect server: reports outlive Prefect's events and database",
    )
    bridge = commands.add_parser(
        "bridge",
        help="turn S3 event notifications into Prefect events (self-hosted server)",
        description="Emit aws.s3.object.created events to the Prefect API (PREFECT_API_URL) for S3 "
        "notifications read from SQS or received over HTTP (EventBridge, SNS).",
    )
    modes = bridge.add_subparsers(dest="mode", required=True, parser_class=_Parser)
    sqs = modes.add_parser("sqs", help="long-poll an SQS queue that receives the notifications")
    sqs.add_argument("--queue-url", required=True, help="the queue's URL")
    sqs.add_argument("--wait-seconds", type=int, default=20, help="long-poll wait (default 20)")
    sqs.add_argument(
        "--receivers", type=int, default=4, metavar="N", help="threads receiving at once (10 messages each; default 4)"
    )
    http = modes.add_parser("http", help="accept EventBridge and SNS HTTP deliveries")
    http.add_argument("--port", type=int, required=True)
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    for mode in (sqs, http):
        mode.add_argument(
            "--batch-seconds",
            type=float,
            default=2.0,
            metavar="S",
            help="objects created close together go out as one batch (one replicate-objects run): "
            "at most S seconds after the first, or 0.5 s after the last (default 2)",
        )
        mode.add_argument(
            "--batch-objects", type=int, default=500, metavar="N", help="objects per batch at most (default 500)"
        )
    http.add_argument(
        "--secret-env",
        default="S3FLOW_BRIDGE_SECRET",
        metavar="VAR",
        help="environment variable holding the shared secret (default S3FLOW_BRIDGE_SECRET); "
        "without one, only SNS messages with a valid signature are accepted",
    )
    uploads = commands.add_parser(
        "uploads",
        help="incomplete multipart uploads under a prefix; abort those older than an age",
        description="List the multipart uploads started under s3://bucket/prefix and never completed "
        "nor aborted (on AWS their parts are billed). With --abort, abort those started "
        "more than --older-than ago: an upload younger than that may be another writer's, "
        "in progress, and is left alone. A run of a transfer aborts what its own crashed "
        "runs left open by itself.",
    )
    uploads.add_argument("prefix", help="s3://bucket/prefix/ (or one key)")
    uploads.add_argument("--abort", action="store_true", help="abort those older than --older-than")
    uploads.add_argument("--older-than", metavar="AGE", help="7d, 12h, 30m...: required with --abort")
    uploads.add_argument("--dry-run", action="store_true", help="with --abort: say what would be aborted")
    uploads.add_argument("--json", action="store_true", help="print one JSON object")
    setup = commands.add_parser(
        "setup",
        help="prepare a Prefect server: work pool, concurrency limit, block types",
        description="Create the work pool and the global concurrency limit, register the "
        "SnsNotification and AwsCredentials block types, and (with --sns-topic-arn) "
        "save an SnsNotification block. Safe to run again.",
    )
    setup.add_argument("--pool", default="s3flow", help="work pool name (default s3flow)")
    setup.add_argument("--sns-topic-arn", help="save an SnsNotification block for this topic")
    setup.add_argument("--sns-block", default="s3flow-failures", help="its name (default s3flow-failures)")
    setup.add_argument("--sns-endpoint-url", help="an SNS-compatible endpoint (tests, local stacks)")
    return top


def _manifest_options(command: argparse.ArgumentParser, name: str) -> None:
    """The options of a command that reads a manifest: s3flow/options.py, the same table
    the flow's parameters come from; each command shows only those it uses."""
    from s3flow import options

    options.add_to(command, name)
    command.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Without PREFECT_API_URL Prefect starts a temporary server for this run; it is
    # ours, so it reports nothing to Prefect's telemetry unless the user asked it to.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A heartbeat every 30 s (Prefect's default: 180), so `s3flow setup`'s automation
    # tells a dead run from a live one within 90 s.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    from s3flow.errors import InputError

    if not isinstance(sys.stdout, _PipeSafe):
        sys.stdout = _PipeSafe(sys.stdout)  # `s3flow verify m.csv | head -2` ends quietly
    try:
        if args.command in NEEDS_PREFECT and not getattr(args, "reports", None):
            check_prefect_api()
        return {
            "plan": plan,
            "verify": verify,
            "transfer": transfer,
            "status": status,
            "history": history,
            "bridge": bridge,
            "setup": setup,
            "uploads": open_uploads,
        }[args.command](args)
    except InputError as exc:
        print(f"s3flow: {exc.describe()}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:  # before a transfer started; a running one records what it did
        print("s3flow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


NEEDS_PREFECT = ("transfer", "status", "history", "bridge", "setup")


def check_prefect_api(timeout: float = 5.0) -> None:
    """A configured Prefect API that does not answer is bad input, said in one line
    (Prefect's own error is a traceback of 80 lines). Unset, Prefect uses a temporary
    local server of its own."""
    import urllib.error
    import urllib.request

    from s3flow.errors import InputError

    url = os.environ.get("PREFECT_API_URL")
    if url is None:
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value()
    if not url:
        return
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return  # it answers; Prefect Cloud wants its key, which Prefect's client sends
        raise InputError(
            f"the Prefect API at {url} (PREFECT_API_URL) answered HTTP {exc.code}: is it a Prefect server's /api URL?"
        ) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(
            f"the Prefect API at {url} (PREFECT_API_URL) does not answer ({reason}): start "
            "the server (`prefect server start`), or point PREFECT_API_URL at a running "
            "one"
        ) from None


class _PipeSafe:
    """stdout that goes quiet when the reader has gone (`| head`): the command still
    finishes and exits with its own code, with no BrokenPipeError traceback."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())  # what is still buffered goes nowhere

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _values(args: argparse.Namespace) -> dict:
    """The option values the command was given (s3flow/options.py's names)."""
    from s3flow import options
    from s3flow.errors import InputError

    values = {name: value for name, value in vars(args).items() if name in options.BY_NAME}
    if getattr(args, "bucket_owner_full_control", False):
        if args.acl not in (None, "bucket-owner-full-control"):
            raise InputError("--bucket-owner-full-control and --acl both set the ACL: give one")
        values["acl"] = "bucket-owner-full-control"
    return values


def _open(args: argparse.Namespace, values: dict):
    """The checked transfer; bad input stops here, before anything is copied."""
    from s3flow import options
    from s3flow.transfer import Transfer

    blocks = values.get("source_credentials") or values.get("destination_credentials")
    config = options.config_from(values, _endpoint_from_block if blocks else None)
    return Transfer.open(args.manifest, config, header=values.get("header"))


class _Preload:
    """Import a module on a thread of its own, to be waited for when it is needed."""

    def __init__(self, name: str) -> None:
        import threading

        self._name = name
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name=f"import {name}", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        import importlib

        try:
            importlib.import_module(self._name)
        except BaseException as exc:  # raised again where the module is wanted
            self._error = exc

    def module(self):
        import importlib

        self._thread.join()
        if self._error is not None:
            raise self._error
        return importlib.import_module(self._name)


def _endpoint_from_block(name: str | None):
    from s3flow.blocks.credentials import endpoint_from_block  # Prefect: only when a block is named

    return endpoint_from_block(name)


def plan(args: argparse.Namespace) -> int:
    from s3flow import estimate, uploads

    prices = estimate.load_prices(args.prices)
    transfer = _open(args, _values(args))
    result = estimate.dry_run(transfer, prices).to_json()
    result["incomplete_uploads"] = _open_uploads(transfer)
    print(
        json.dumps(result) if args.json else estimate.text(result) + "\n" + uploads.text(result["incomplete_uploads"])
    )
    return EXIT_FAILED if result["failed"]["objects"] else EXIT_OK


def _open_uploads(transfer) -> dict:
    """Incomplete multipart uploads under the transfer's destinations (s3flow/uploads.py)."""
    from s3flow import uploads
    from s3flow.retry import Retrier

    prefixes = [row.destination for row in transfer.rows if row.destination.bucket not in transfer.missing_buckets]
    return uploads.report(transfer.destination, prefixes, Retrier(transfer.config)).to_json()


def verify(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from s3flow import estimate, uploads
    from s3flow.record import SKIPPED

    differences = []
    transfer = _open(args, _values(args))
    transfer = transfer.with_config(replace(transfer.config, verifying=True))  # reads bytes for md5/sha256
    checked = estimate.dry_run(
        transfer,
        estimate.load_prices(None),
        on_result=lambda result: None if result.status == SKIPPED else differences.append(result),
    )
    left_open = _open_uploads(transfer)
    files = checked.copy.objects + checked.skip.objects + checked.delete.objects + checked.fail.objects
    found = [
        {"source": r.source, "destination": r.destination, "status": str(r.status), "why": r.error or _reason(r.detail)}
        for r in differences
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "files": files,
                    "identical": checked.skip.objects,
                    "differences": found,
                    "incomplete_uploads": left_open,
                }
            )
        )
    else:
        for item in found:
            print(f"{item['status'].upper():<13}{item['source'] or '-'} -> {item['destination']}: {item['why']}")
        print(f"{files:,} files checked: {checked.skip.objects:,} identical, {len(found):,} differ")
        print(uploads.text(left_open))
    return EXIT_FAILED if found else EXIT_OK


def status(args: argparse.Namespace) -> int:
    from s3flow.flows.status import transfer_status
    from s3flow.report import human_bytes

    found = transfer_status(args.flow_run_id)
    if args.json:
        print(json.dumps(found))
        return EXIT_OK
    so_far = "" if found["complete"] else " (so far: the run has not recorded its final table)"
    from s3flow.flows.notify import ui_link

    print(f"flow run   {found['flow_run_id']} ({found['flow_run_name']}): {found['state']}{so_far}")
    print(f"           {ui_link(found['flow_run_id'])} (Artifacts tab: the per-file table and summary)")
    if found["state_message"]:
        print(f"           {found['state_message']}")
    counts = ", ".join(f"{n:,} {status}" for status, n in found["counts"].items()) or "none yet"
    print(f"files      {found['files']:,}: {counts}")
    print(
        f"copied     {human_bytes(found['bytes_copied'])} in {found['seconds']:.1f} s "
        f"({found['bytes_per_second'] / 1e6:.1f} MB/s)"
    )
    if found.get("lag"):
        from s3flow.report import lag_text

        print(f"lag        {lag_text(found['lag'])}")
    if args.all:
        for row in found["rows"]:
            print(
                f"{row['status'].upper():<9}{row['source'] or '-'} -> {row['destination']}"
                + (f": {row['error']}" if row["error"] else "")
            )
        return EXIT_OK
    for cause in found["causes"]:  # failures grouped by cause; --all lists every file
        example = cause["example"] or {}
        if cause["files"] == 1:
            print(
                f"FAILED   {example.get('source') or '-'} -> {example.get('destination')}: "
                f"{cause['error_code']}: {cause['message']}"
            )
        else:
            print(
                f"FAILED   {cause['files']:,} files: {cause['error_code']}: {cause['message']} "
                f"(e.g. {example.get('source') or '-'} -> {example.get('destination')}; --all lists them)"
            )
    return EXIT_OK


def history(args: argparse.Namespace) -> int:
    from s3flow.errors import InputError
    from s3flow.flows.history import object_history, scan_artifacts
    from s3flow.flows.notify import ui_link
    from s3flow.manifest import is_prefix_key, parse_uri

    try:
        ref = parse_uri(args.uri)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if is_prefix_key(ref.key):
        raise InputError(f"{args.uri} is a prefix: history is kept per object")
    if args.reports:
        entries = _history_from_reports(args.uri, args.reports, args.limit)
    else:
        entries = (scan_artifacts if args.scan_artifacts else object_history)(args.uri, args.limit)
    if args.json:
        print(json.dumps(entries))
    elif not entries:
        print(f"no recorded run copied, skipped, failed or deleted {args.uri}")
    for entry in entries if not args.json else ():
        other = entry["source"] if entry["role"] == "destination" else entry["destination"]
        arrow = "" if not other else f" ({'from' if entry['role'] == 'destination' else 'to'} {other})"
        print(f"{entry['time']}  {entry['status'].upper():<9} as {entry['role']}{arrow}")
        print(f"    run {entry['flow_run_id']}  {ui_link(entry['flow_run_id'])}")
        print(
            f"    started by {entry['trigger'] or '?'}; attempts {entry['attempts']}, size {entry['size']}, "
            f"etag {entry['etag'] or '-'}, checksum {entry['checksum'] or '-'}"
        )
        if entry.get("evidence"):
            print(f"    proven by: {entry['evidence']}")
        if entry["error"]:
            print(f"    error: {entry['error']}")
        if entry.get("report"):
            print(f"    report {entry['report']}")
    return EXIT_OK if entries else EXIT_FAILED


def _history_from_reports(uri: str, reports: str, limit: int) -> list[dict]:
    """history's entries from completion reports (s3flow/audit.py), newest first."""
    from s3flow import audit
    from s3flow.config import Endpoint
    from s3flow.errors import S3Error
    from s3flow.storage import Storage

    prefix = audit.report_prefix(reports)
    storage = Storage(Endpoint())
    storage.check_credentials("reports")
    try:
        table = audit.load(storage, prefix)
    except S3Error as exc:
        raise audit.fetch_error(exc, prefix) from None
    found = audit.history(table, uri)
    entries = []
    for row in reversed(found.to_dict("records")):
        role = "source" if row["source"] == uri.partition("?")[0] else "destination"
        entries.append(
            {
                "time": row["end"] or row["start"],
                "status": row["status"],
                "role": role,
                "source": row["source"] + (f"?versionId={row['source_version']}" if row["source_version"] else ""),
                "destination": row["destination"],
                "flow_run_id": row["flow_run_id"],
                "trigger": row["trigger"],
                "attempts": int(row["attempts"] or 0),
                "size": int(row["size"]) if row["size"] else None,
                "etag": row["source_etag"],
                "destination_etag": row["destination_etag"],
                "checksum": f"{row['checksum_algorithm']}:{row['checksum']}" if row["checksum"] else "",
                "md5": row["md5"],
                "sha256": row["sha256"],
                "evidence": row["evidence"],
                "error": f"{row['error_code']}: {row['error_message']}" if row["error_code"] else "",
                "report": row["report"],
            }
        )
    return entries[:limit]


def bridge(args: argparse.Namespace) -> int:
    import logging
    import threading

    from s3flow.flows.bridge import (
        QUIET_SECONDS,
        Batcher,
        Counts,
        HttpBridge,
        PrefectEvents,
        SqsBridge,
        run_until_signalled,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for chatty in ("botocore", "boto3", "httpx", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    events = PrefectEvents()
    counts = Counts()
    batcher = Batcher(
        events,
        window=args.batch_seconds,
        quiet=min(QUIET_SECONDS, args.batch_seconds),
        most=max(1, args.batch_objects),
        counts=counts,
    )
    if args.mode == "sqs":
        runner = SqsBridge(args.queue_url, events, wait_seconds=args.wait_seconds, batcher=batcher)
        run_until_signalled(runner.stopping.set)
        try:
            runner.run(max(1, args.receivers))
        finally:
            batcher.close()  # what was received goes out, and its messages are deleted
        print(
            f"bridge stopped: {counts.events} object events sent in {counts.batches} batches, "
            f"{counts.duplicates} duplicates dropped, {counts.skipped} skipped, "
            f"{counts.rejected} malformed messages left in the queue"
        )
        return EXIT_OK
    secret = os.environ.get(args.secret_env) or None
    server = HttpBridge(events, secret=secret, batcher=batcher).serve(args.host, args.port)
    run_until_signalled(lambda: threading.Thread(target=server.shutdown).start())
    print(
        f"bridge listening on http://{args.host}:{server.server_address[1]}/ "
        f"({'shared secret or ' if secret else ''}signed SNS messages accepted)",
        flush=True,
    )
    server.serve_forever()
    return EXIT_OK


def setup(args: argparse.Namespace) -> int:
    from s3flow.flows.setup import setup as prepare_server

    for line in prepare_server(args.pool, args.sns_topic_arn, args.sns_block, args.sns_endpoint_url):
        print(line)
    return EXIT_OK


def open_uploads(args: argparse.Namespace) -> int:
    """`s3flow uploads`: exit 0, or 1 when an abort failed."""
    from s3flow import uploads
    from s3flow.config import TransferConfig
    from s3flow.errors import InputError
    from s3flow.manifest import parse_uri
    from s3flow.retry import Retrier
    from s3flow.storage import Storage

    try:
        prefix = parse_uri(args.prefix)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.abort and not args.older_than:
        raise InputError(
            "--abort needs --older-than AGE: an upload younger than that may be another writer's, still in progress"
        )
    age = uploads.parse_age(args.older_than) if args.older_than else None
    storage, retrier = Storage(), Retrier(TransferConfig())
    storage.check_credentials("bucket")
    if not args.abort:
        found = uploads.report(storage, [prefix], retrier).to_json()
        print(json.dumps(found) if args.json else uploads.text(found).replace("the destinations", args.prefix))
        return EXIT_OK
    aborted, failed = uploads.abort_older(storage, prefix, age or 0.0, retrier, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"aborted": aborted, "failed": failed, "dry_run": args.dry_run}))
    else:
        verb = "would abort" if args.dry_run else "aborted"
        for upload in aborted:
            print(f"{verb} {upload['uri']} upload {upload['upload_id']} (started {upload['initiated']})")
        for upload in failed:
            print(f"FAILED {upload['uri']} upload {upload['upload_id']}: {upload['error']}")
        print(f"{len(aborted)} {verb}, {len(failed)} failed, under {args.prefix} older than {args.older_than}")
    return EXIT_FAILED if failed else EXIT_OK


def _reason(detail: str) -> str:
    """A dry run's detail is "<why>: <how it would be copied>"; the why."""
    return detail.rpartition(": ")[0] or detail


def transfer(args: argparse.Namespace) -> int:
    from s3flow import estimate
    from s3flow.errors import InputError

    values = _values(args)
    values["prices"] = estimate.load_prices(args.prices) if args.dry_run else None
    slots = _head_start_slots(args)
    # Prefect's imports (two seconds of CPU) run on a thread beside the transfer's opening;
    # with a head start, once its first copies are on their way: both want the GIL.
    glue = None if slots else _Preload("s3flow.flows.transfer")
    # Bad input stops here, before any flow run exists; the run uses this very transfer.
    opened = _open(args, values)
    head_start = _head_start(opened, slots)
    glue = glue or _Preload("s3flow.flows.transfer")
    try:
        flows = glue.module()
        flows.hand_over(opened, values.get("header"), values, head_start)
        artifact_base, transfer_manifest = flows.artifact_base, flows.transfer_manifest
        state = transfer_manifest(**values, return_state=True)
    finally:
        if head_start is not None and not head_start.adopted:  # the run never started: stop its copies
            head_start.abandon()
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # e.g. cancelled just as it finished: the run has no result
        result = exc
    if isinstance(result, InputError):
        raise result
    if not isinstance(result, dict):
        print(f"s3flow: the transfer did not finish: {state.message or result}", file=sys.stderr)
        return EXIT_FAILED
    if args.dry_run:
        print(json.dumps(result) if args.json else estimate.text(result))
        return EXIT_FAILED if result["failed"]["objects"] else EXIT_OK
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result, state, artifact_base(args.manifest, args.transfer_name))
    if state.is_cancelled():
        print(
            "s3flow: the transfer was cancelled: files not copied are recorded as cancelled; "
            "run the same command again to finish it",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if result["failed"] else EXIT_OK


def _head_start_slots(args: argparse.Namespace) -> int:
    """Request slots of a head start (s3flow.transfer.HeadStart), 0 for none: not for dry
    runs and shards (their run decides what to do), nor with S3FLOW_HEAD_START_SLOTS=0."""
    from s3flow.transfer import HEAD_START_SLOTS

    slots = int(os.environ.get("S3FLOW_HEAD_START_SLOTS", HEAD_START_SLOTS) or 0)
    return 0 if args.dry_run or args.shard_files > 0 else max(0, slots)


def _head_start(opened, slots: int):
    """Start copying while Prefect loads, with `slots` requests at once (0: do not)."""
    from s3flow.transfer import HeadStart

    return HeadStart(opened, slots).start() if slots else None


def _print_summary(result: dict, state, base: str) -> None:
    from prefect.utilities.urls import url_for

    from s3flow.report import text

    print(text(result))
    run_id = result.get("flow_run_id") or state.state_details.flow_run_id
    link = url_for("flow-run", obj_id=run_id)
    print(f"\nflow run   {run_id}" + (f"  {link}" if link else ""))
    print(f"artifacts  {base}-files (per file), {base}-summary, {base}-progress")
    if result.get("report"):
        print(f"report     {result['report']} (files.csv.gz, summary.json)")
    print(f"           prefect artifact inspect {base}-summary")


if __name__ == "__main__":
    sys.exit(main())
