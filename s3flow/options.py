"""Every option of a transfer, declared once.

The CLI's flags (`s3flow transfer|plan|verify`), the flow parameters of
transfer-manifest (their defaults and the descriptions the UI shows), and the
TransferConfig they build all come from OPTIONS; nothing else lists them. Each
option names the commands that use it, so `plan --help` shows no copy-only flag.

| field    | meaning                                                              |
|----------|----------------------------------------------------------------------|
| name     | the flow parameter, and the CLI's argparse dest                      |
| default  | one default for the flag and the parameter                           |
| help     | one text: the flag's help and the parameter's description in the UI |
| flag     | the CLI flag ("" for a positional argument, None: a flow parameter only) |
| commands | the CLI commands that take it                                        |
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import CHECKSUM_ALGORITHMS, PART_COPIES, SSE_MODES, Endpoint, MiB, TransferConfig

COPY = frozenset({"transfer"})
PLAN = frozenset({"transfer", "plan"})
ALL = frozenset({"transfer", "plan", "verify"})
FLOW_ONLY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    flag: str | None = None
    commands: frozenset[str] = ALL
    kind: Callable | None = None  # argparse type
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None  # argparse action for booleans
    extra: dict = field(default_factory=dict)


_D = TransferConfig()  # the engine's defaults, so the two cannot differ

OPTIONS: tuple[Option, ...] = (
    Option(
        "manifest",
        None,
        "Local path (on the worker) or s3://bucket/key of a CSV of source,destination[,version_id] rows.",
        flag="",
    ),
    Option(
        "delete",
        _D.delete,
        "Prefix rows: delete destination objects the source no longer has.",
        flag="--delete",
        action="store_true",
    ),
    Option(
        "header",
        None,
        "Whether the first row is a header; empty to detect it.",
        flag="--header",
        extra={"no_flag": "--no-header"},
    ),
    Option(
        "multipart_threshold_mib",
        _D.multipart_threshold // MiB,
        "Copy objects larger than this (MiB) in parts.",
        flag="--multipart-threshold-mib",
        kind=int,
        metavar="N",
        commands=PLAN,
    ),
    Option(
        "part_size_mib",
        _D.part_size // MiB,
        "Part size (MiB) of multipart copies, grown to fit S3's 10,000 parts.",
        flag="--part-size-mib",
        kind=int,
        metavar="N",
        commands=PLAN,
    ),
    Option(
        "max_concurrency",
        _D.max_concurrency,
        "S3 requests in flight for this transfer, files and parts together.",
        flag="--concurrency",
        kind=int,
        metavar="N",
    ),
    Option(
        "part_concurrency",
        _D.part_concurrency,
        "Parts of one object copied at once.",
        flag="--part-concurrency",
        kind=int,
        metavar="N",
        commands=COPY,
    ),
    Option(
        "max_attempts",
        _D.max_attempts,
        "Tries per S3 request on transient errors (SlowDown, 500, resets...).",
        flag="--max-attempts",
        kind=int,
        metavar="N",
    ),
    Option(
        "batch_files",
        _D.batch_files,
        "Files per copy-batch task run (the unit of scheduling; every file's result is recorded "
        "within seconds whatever this is).",
        flag="--batch-files",
        kind=int,
        metavar="N",
        commands=COPY,
    ),
    Option(
        "source_credentials",
        None,
        "Name of a prefect-aws AwsCredentials block for the source side; empty: the environment's.",
        flag="--source-credentials",
        metavar="BLOCK",
    ),
    Option(
        "destination_credentials",
        None,
        "Name of a prefect-aws AwsCredentials block for the destination side.",
        flag="--destination-credentials",
        metavar="BLOCK",
    ),
    Option(
        "report",
        None,
        "s3://bucket/prefix/ to write a completion report under, per transfer and run: one gzip CSV "
        "row per file (ETags, checksums, evidence, status, times, error) and a JSON summary; "
        "rewritten every 5 minutes while the run goes on. Empty: none.",
        flag="--report",
        metavar="S3_PREFIX",
        commands=COPY,
    ),
    Option(
        "report_retention",
        None,
        "Object Lock retention of the final report objects, MODE:DAYS (GOVERNANCE or COMPLIANCE; "
        "the bucket must have Object Lock enabled). Empty: none.",
        flag="--report-retention",
        metavar="MODE:DAYS",
        commands=COPY,
    ),
    Option(
        "report_credentials",
        None,
        "AwsCredentials block the report is written with; empty: the destination side's.",
        flag="--report-credentials",
        metavar="BLOCK",
        commands=COPY,
    ),
    Option(
        "filters",
        None,
        'Prefix rows, in order: "include:GLOB" / "exclude:GLOB" on the key below '
        "the prefix; the last match wins (CLI: --include GLOB, --exclude GLOB).",
        flag="--include",
    ),
    Option(
        "storage_class",
        _D.storage_class,
        "Destination storage class; empty keeps the source's (archive classes become STANDARD).",
        flag="--storage-class",
        metavar="CLASS",
        commands=COPY,
    ),
    Option(
        "sse",
        _D.sse,
        "Destination encryption: AES256 or aws:kms; empty: the destination bucket's default.",
        flag="--sse",
        choices=tuple(sorted(SSE_MODES)),
        commands=COPY,
    ),
    Option(
        "sse_kms_key_id",
        _D.sse_kms_key_id,
        "KMS key id or ARN for sse aws:kms.",
        flag="--sse-kms-key-id",
        metavar="KEY",
        commands=COPY,
    ),
    Option(
        "acl",
        _D.acl,
        "Canned ACL for the destination objects, e.g. bucket-owner-full-control (cross-account).",
        flag="--acl",
        metavar="CANNED",
        commands=COPY,
    ),
    Option(
        "requester_pays",
        _D.requester_pays,
        "The source bucket is requester-pays: this transfer pays for its reads.",
        flag="--requester-pays",
        action="store_true",
    ),
    Option(
        "keep_source_layout",
        _D.keep_source_layout,
        "Copy multipart objects in the source's own parts so ETags match (off: cut objects above "
        "the threshold in our parts; ETags then differ and copies are verified by content).",
        flag="--ignore-source-layout",
        action="store_false",
        commands=PLAN,
    ),
    Option(
        "part_copies",
        _D.part_copies,
        'Multipart sources up to 5 GiB: "auto" copies them in parts on AWS and with one CopyObject '
        'on other stores where that keeps the ETag; "always" copies every multipart source in parts, '
        "whatever its size.",
        flag="--part-copies",
        choices=PART_COPIES,
        commands=PLAN,
    ),
    Option(
        "checksum_algorithm",
        _D.checksum_algorithm,
        "Checksum each copy asks S3 for, replacing the source's: "
        f'{", ".join(sorted(CHECKSUM_ALGORITHMS))}; default (empty, "keep" or "none"): keep the '
        "source's own checksum, and prove copies by full-object checksums where both have one.",
        flag="--checksum",
        metavar="ALGORITHM",
        commands=COPY,
    ),
    Option(
        "dry_run",
        False,
        "Only plan: list and HEAD, copy and delete nothing, record the plan and its cost.",
        flag="--dry-run",
        action="store_true",
        commands=COPY,
    ),
    Option(
        "transfer_name",
        None,
        "Names the artifact keys; default: derived from the manifest location.",
        flag="--name",
        metavar="NAME",
        commands=COPY,
    ),
    Option(
        "prices",
        None,
        "Request prices for the plan's cost estimate (CLI: a JSON file; keys of "
        "s3flow.estimate.DEFAULT_PRICES; default: S3 Standard, us-east-1).",
        flag="--prices",
        metavar="FILE.json",
        commands=PLAN,
    ),
    Option(
        "shard_files",
        0,
        "Split a transfer of more files than this into shards of about this many, "
        "each its own run of shard_deployment on the work pool (0: never split).",
        flag="--shard-files",
        kind=int,
        metavar="N",
        commands=COPY,
    ),
    Option(
        "shard_deployment",
        "transfer-shard/shards",
        "The transfer-shard deployment that runs shards.",
        flag="--shard-deployment",
        metavar="NAME",
        commands=COPY,
    ),
    Option(
        "notification_block", None, "SnsNotification block told when files failed; empty: none.", commands=FLOW_ONLY
    ),
    Option(
        "max_resumes",
        3,
        "Times a deployment run that crashed (its process died) is started again by "
        "`s3flow setup`'s automation to resume where it stopped; then it ends Failed.",
        commands=FLOW_ONLY,
    ),
    Option(
        "concurrency_limit",
        "s3flow-requests",
        "Global concurrency limit all transfers share (created if missing).",
        commands=FLOW_ONLY,
    ),
)
BY_NAME = {option.name: option for option in OPTIONS}


def default(name: str) -> Any:
    return BY_NAME[name].default


def add_to(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of `command`, from OPTIONS."""
    for option in OPTIONS:
        if command not in option.commands or option.flag is None:
            continue
        if option.flag == "":
            parser.add_argument(option.name, help=option.help)
        elif option.name == "filters":
            parser.add_argument(
                "--include",
                metavar="GLOB",
                dest="filters",
                action="append",
                type=lambda p: f"include:{p}",
                help="prefix rows: include keys (below the prefix) matching GLOB; repeatable",
            )
            parser.add_argument(
                "--exclude",
                metavar="GLOB",
                dest="filters",
                action="append",
                type=lambda p: f"exclude:{p}",
                help="prefix rows: exclude keys matching GLOB; filters apply in order, the last match wins",
            )
        elif option.name == "header":
            parser.add_argument(
                option.flag,
                dest="header",
                action="store_true",
                default=None,
                help="the first row is a header (default: detected)",
            )
            parser.add_argument(
                option.extra["no_flag"], dest="header", action="store_false", help="the first row is data"
            )
        elif option.action:
            parser.add_argument(option.flag, dest=option.name, action=option.action, help=_cli_help(option))
        else:
            parser.add_argument(
                option.flag,
                dest=option.name,
                default=option.default,
                type=option.kind or str,
                metavar=option.metavar,
                choices=option.choices,
                help=_cli_help(option),
            )
    if command == "transfer":
        parser.add_argument(
            "--bucket-owner-full-control",
            action="store_true",
            help="cross-account copies: give the destination bucket's owner full control "
            "(the same as --acl bucket-owner-full-control)",
        )


def _cli_help(option: Option) -> str:
    text = option.help.rstrip(".")
    if not text[1:2].isupper():  # "S3 requests" keeps its capital
        text = text[0].lower() + text[1:]
    if option.action or option.default in (None, ""):
        return text
    return f"{text} (default {option.default})"


def flow_doc(summary: str, names: list[str]) -> str:
    """A flow's docstring with an Args section from OPTIONS: the UI's parameter descriptions."""
    lines = [summary.strip(), "", "Args:"]
    for name in names:
        lines.append(f"    {name}: {BY_NAME[name].help}")
    return "\n".join(lines) + "\n"


def documented(summary: str) -> Callable:
    """Give a flow function the docstring flow_doc makes from its parameters' names:
    Prefect reads each parameter's description from the Args section."""
    import inspect

    def document(function: Callable) -> Callable:
        function.__doc__ = flow_doc(summary, list(inspect.signature(function).parameters))
        return function

    return document


def engine_values(values: dict) -> dict:
    """The option values a TransferConfig is built from (the others are the flow's)."""
    return {name: values[name] for name in ENGINE if name in values}


ENGINE = (
    "delete",
    "dry_run",
    "filters",
    "storage_class",
    "sse",
    "sse_kms_key_id",
    "acl",
    "requester_pays",
    "keep_source_layout",
    "part_copies",
    "checksum_algorithm",
    "multipart_threshold_mib",
    "part_size_mib",
    "max_concurrency",
    "part_concurrency",
    "max_attempts",
    "batch_files",
    "source_credentials",
    "destination_credentials",
    "report",
    "report_retention",
    "report_credentials",
)


def config_from(values: dict, endpoint: Callable[[str | None], Endpoint] | None = None, **overrides) -> TransferConfig:
    """The one TransferConfig of these option values; InputError if any is wrong.
    `endpoint` turns a credentials block's name into an Endpoint (Prefect glue)."""
    from . import filters as filter_rules

    def value(name: str):
        return values.get(name, default(name))

    def side(name: str) -> Endpoint:
        block = value(name)
        return endpoint(block) if endpoint is not None and block else Endpoint()

    checksum = value("checksum_algorithm")
    return TransferConfig(
        multipart_threshold=value("multipart_threshold_mib") * MiB,
        part_size=value("part_size_mib") * MiB,
        max_concurrency=value("max_concurrency"),
        part_concurrency=value("part_concurrency"),
        max_attempts=value("max_attempts"),
        delete=bool(value("delete")),
        dry_run=bool(value("dry_run")),
        batch_files=value("batch_files"),
        filters=filter_rules.parse(value("filters")),
        storage_class=value("storage_class"),
        sse=value("sse"),
        sse_kms_key_id=value("sse_kms_key_id"),
        acl=value("acl"),
        requester_pays=bool(value("requester_pays")),
        keep_source_layout=bool(value("keep_source_layout")),
        part_copies=value("part_copies"),
        checksum_algorithm=None if not checksum or checksum.lower() in ("none", "keep") else checksum.upper(),
        source=side("source_credentials"),
        destination=side("destination_credentials"),
        report=value("report") or None,
        report_retention=value("report_retention") or None,
        report_endpoint=side("report_credentials") if value("report_credentials") else None,
        **overrides,
    )
