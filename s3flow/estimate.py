"""The plan of a transfer, before it runs: what it would copy, skip and delete,
how many S3 requests that takes, and what they cost.

A view of the dry run's file results (statuses would-copy / skipped /
would-delete / failed), like every other report.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import MAX_SINGLE_COPY, TransferConfig
from .errors import InputError
from .layout import etag_parts
from .record import FAILED, SKIPPED, WOULD_COPY, WOULD_DELETE, FileResult
from .report import human_bytes

# Request prices in USD, S3 Standard, us-east-1 (aws.amazon.com/s3/pricing, 2026):
# | key                | requests                                   | price           |
# |--------------------|--------------------------------------------|-----------------|
# | class_a_per_1000   | COPY, PUT, POST (multipart), LIST          | 0.005 / 1,000   |
# | class_b_per_1000   | GET, HEAD (and GetObjectTagging)           | 0.0004 / 1,000  |
# | delete_per_1000    | DELETE (DeleteObjects)                     | free            |
# | transfer_per_gb    | bytes copied; 0 within a region, about     | 0 / GB          |
# |                    | 0.02 between regions                       |                 |
# Other regions, classes and stores differ: pass your own with --prices FILE.json.
DEFAULT_PRICES = {"class_a_per_1000": 0.005, "class_b_per_1000": 0.0004, "delete_per_1000": 0.0, "transfer_per_gb": 0.0}
TOP_PREFIXES = 5
EXAMPLES = 10


def load_prices(path: str | None) -> dict[str, float]:
    """The default price table, with the keys a JSON file gives replaced."""
    if not path:
        return dict(DEFAULT_PRICES)
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the price table {path}: {exc}") from None
    return prices_from(given, f"price table {path}")


def prices_from(given, where: str = "prices") -> dict[str, float]:
    """The default price table with `given`'s keys replaced, after checking them."""
    if not given:
        return dict(DEFAULT_PRICES)
    unknown = set(given) - set(DEFAULT_PRICES) if isinstance(given, dict) else {"(not an object)"}
    if unknown or not all(isinstance(v, (int, float)) and v >= 0 for v in given.values()):
        raise InputError(
            f"{where}: expected an object with non-negative numbers for "
            f"{', '.join(DEFAULT_PRICES)}; got {sorted(unknown) or given}"
        )
    return {**DEFAULT_PRICES, **given}


@dataclass
class Tally:
    objects: int = 0
    bytes: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, uri: str, size: int | None) -> None:
        self.objects += 1
        self.bytes += size or 0
        if len(self.examples) < EXAMPLES:
            self.examples.append(uri)

    def to_json(self) -> dict:
        return {"objects": self.objects, "bytes": self.bytes, "examples": self.examples}


@dataclass
class Estimate:
    config: TransferConfig
    prices: dict[str, float]
    object_lines: frozenset[int]  # manifest lines of object rows: they HEAD both sides
    copy: Tally = field(default_factory=Tally)
    skip: Tally = field(default_factory=Tally)
    delete: Tally = field(default_factory=Tally)
    fail: Tally = field(default_factory=Tally)
    over_5gib: Tally = field(default_factory=Tally)
    needs_restore: Tally = field(default_factory=Tally)
    errors: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)
    source_prefixes: Counter = field(default_factory=Counter)
    destination_prefixes: Counter = field(default_factory=Counter)
    excluded: int = 0  # source objects --include/--exclude left out

    def add(self, results: list[FileResult]) -> None:
        for result in results:
            if result.line in self.object_lines and result.status != WOULD_DELETE:
                self.requests["head"] += 2 if result.status != FAILED else 1
            if result.status == WOULD_COPY:
                self._add_copy(result)
            elif result.status == SKIPPED:
                self.skip.add(result.source, result.size)
            elif result.status == WOULD_DELETE:
                self.delete.add(result.destination, result.size)
                self.destination_prefixes[_parent(result.destination)] += 1
            elif result.status == FAILED:
                self.fail.add(result.source or result.destination, result.size)
                self.errors[result.error_code] += 1
                if result.error_code == "InvalidObjectState":
                    self.needs_restore.add(result.source, result.size)

    def _add_copy(self, result: FileResult) -> None:
        size = result.size or 0
        self.copy.add(result.source, size)
        if size > MAX_SINGLE_COPY:
            self.over_5gib.add(result.source, size)
        parts = result.parts or self.config.parts(size)
        if parts == 1:
            self.requests["copy_object"] += 1
        else:  # HEAD + tagging to carry properties, create, parts, complete
            self.requests["head"] += 2 if self.config.keep_source_layout and etag_parts(result.etag) else 1
            self.requests["get_tagging"] += 1
            self.requests["multipart"] += 2
            self.requests["upload_part_copy"] += parts
        self.source_prefixes[_parent(result.source)] += parts
        self.destination_prefixes[_parent(result.destination)] += parts

    def finish(self, listed_pages: int, excluded: int = 0) -> None:
        self.requests["list"] = listed_pages
        self.excluded = excluded
        self.requests["delete"] = -(-self.delete.objects // 1000)

    def cost(self) -> dict[str, float]:
        r, p = self.requests, self.prices
        class_a = r["copy_object"] + r["multipart"] + r["upload_part_copy"] + r["list"]
        class_b = r["head"] + r["get_tagging"]
        parts = {
            "class_a": class_a / 1000 * p["class_a_per_1000"],
            "class_b": class_b / 1000 * p["class_b_per_1000"],
            "delete": r["delete"] / 1000 * p["delete_per_1000"],
            "transfer": self.copy.bytes / 1e9 * p["transfer_per_gb"],
        }
        return {**{k: round(v, 9) for k, v in parts.items()}, "total": round(sum(parts.values()), 9)}

    def to_json(self) -> dict:
        requests = {
            k: self.requests[k]
            for k in ("list", "head", "get_tagging", "copy_object", "multipart", "upload_part_copy", "delete")
        }
        return {
            "copy": self.copy.to_json(),
            "skip": self.skip.to_json(),
            "delete": self.delete.to_json(),
            "failed": {**self.fail.to_json(), "errors": dict(self.errors)},
            "over_5gib": self.over_5gib.to_json(),
            "needs_restore": self.needs_restore.to_json(),
            "excluded_by_filters": self.excluded,
            "requests": {**requests, "total": sum(requests.values())},
            "cost_usd": self.cost(),
            "prices": self.prices,
            "busiest_prefixes": {"source": _top(self.source_prefixes), "destination": _top(self.destination_prefixes)},
        }


def text(plan: dict) -> str:
    """A plan (Estimate.to_json) as a terminal prints it."""
    lines = [f"{'':<14}{'objects':>10}{'bytes':>14}"]
    for name in ("copy", "skip", "delete", "failed", "over_5gib", "needs_restore"):
        tally = plan[name]
        lines.append(f"{name.replace('_', ' '):<14}{tally['objects']:>10,}{human_bytes(tally['bytes']):>14}")
    if plan["excluded_by_filters"]:
        lines.append(f"{'excluded':<14}{plan['excluded_by_filters']:>10,}  (by --include/--exclude)")
    requests, cost = plan["requests"], plan["cost_usd"]
    lines.append(
        f"\nS3 requests   {requests['total']:,} ("
        + ", ".join(f"{k} {v:,}" for k, v in requests.items() if k != "total" and v)
        + ")"
    )
    lines.append(
        f"estimated cost ${cost['total']:.4f} (requests ${cost['class_a'] + cost['class_b']:.4f}, "
        f"transfer ${cost['transfer']:.4f}; prices: --prices FILE)"
    )
    for side in ("source", "destination"):
        busiest = plan["busiest_prefixes"][side]
        if busiest:
            lines.append(
                f"busiest {side} prefixes: " + ", ".join(f"{b['prefix']} ({b['requests']:,})" for b in busiest)
            )
    for name, why in (("needs_restore", "restore first (not copied)"), ("over_5gib", "over 5 GiB (multipart)")):
        for uri in plan[name]["examples"]:
            lines.append(f"{why}: {uri}")
    if plan["failed"]["errors"]:
        lines.append("would fail: " + ", ".join(f"{c} x{n}" for c, n in plan["failed"]["errors"].items()))
    return "\n".join(lines)


def markdown(plan: dict, title: str) -> str:
    rows = [
        f"| {name.replace('_', ' ')} | {plan[name]['objects']:,} | {human_bytes(plan[name]['bytes'])} |"
        for name in ("copy", "skip", "delete", "failed", "over_5gib", "needs_restore")
    ]
    requests = plan["requests"]
    lines = [
        f"# {title}",
        "",
        "| | objects | bytes |",
        "|---|---:|---:|",
        *rows,
        "",
        "| requests | count |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in requests.items()),
        "",
        f"Estimated cost: **${plan['cost_usd']['total']:.4f}** (prices: `{plan['prices']}`)",
    ]
    for side in ("source", "destination"):
        for item in plan["busiest_prefixes"][side]:
            lines.append(f"- busiest {side} prefix `{item['prefix']}`: {item['requests']:,} requests")
    return "\n".join(lines)


def _parent(uri: str) -> str:
    base = uri.split("?versionId=", 1)[0]
    return base.rsplit("/", 1)[0] + "/"


def _top(counter: Counter) -> list[dict]:
    return [{"prefix": prefix, "requests": n} for prefix, n in counter.most_common(TOP_PREFIXES)]


def dry_run(transfer, prices: dict[str, float], on_result=None) -> Estimate:
    """Plan an opened transfer (s3flow.transfer.Transfer) without Prefect and without
    changing anything: listings and HEADs only, through the runner every transfer uses.
    `on_result`, if given, sees every file's result as it is decided."""
    transfer = transfer.with_config(replace(transfer.config, dry_run=True))
    estimate = Estimate(transfer.config, prices, frozenset(row.line for row in transfer.rows if not row.is_prefix))
    lock = threading.Lock()

    def seen(result: FileResult) -> None:
        with lock:
            estimate.add([result])
        if on_result:
            on_result(result)

    outcome = transfer.run(seen)
    estimate.finish(outcome.listed_pages, outcome.excluded)
    return estimate
