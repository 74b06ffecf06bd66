"""Read and validate a transfer manifest: rows of source and destination S3 URIs.

Format, decided per file:
- delimiter: a tab if the first row has one, else a comma if it has one, else
  runs of whitespace (quote fields with `"` to put a delimiter inside a key);
- header: the first row is a header when its first field is not an `s3://` URI
  (or as forced by header=True/False). A header names the columns, read by name in
  any order: source, destination, version_id, md5, sha256 (a name we do not know
  is an error naming it). Without one, columns are source, destination[, version_id];
- md5 / sha256 (hex): what the object row's bytes must hash to, as a sequencing
  provider's md5sum manifest says; the copy is proven against them (plan.settle);
- `s3://bucket/key` -> `s3://bucket/key` copies one object; a destination ending
  in `/` copies into that prefix under the source's own name;
- `s3://bucket/prefix/` (or `s3://bucket`) -> `s3://bucket/prefix/` syncs a prefix.
Every problem in the whole file is reported, with its line, before anything is copied.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import InputError, Problem
from .record import ObjectRef

SCHEME = "s3://"
MAX_KEY_BYTES = 1024
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


@dataclass(frozen=True)
class ManifestRow:
    line: int
    source: ObjectRef
    destination: ObjectRef
    # A shard of a prefix row (flows/shard.py): the `count` objects (None: all) the
    # source lists after the key `after` (below the prefix; None: from the first).
    after: str | None = None
    count: int | None = None
    expected: tuple[tuple[str, str], ...] = ()  # (("md5", hex), ("sha256", hex)) named in the row
    event_time: float | None = None  # replication: when the source object was created (its event)

    @property
    def is_shard(self) -> bool:
        return self.after is not None or self.count is not None

    @property
    def is_prefix(self) -> bool:
        return is_prefix_key(self.source.key)


def is_prefix_key(key: str) -> bool:
    return key == "" or key.endswith("/")


def parse_uri(text: str) -> ObjectRef:
    """`s3://bucket/key` as an ObjectRef; ValueError says what is wrong."""
    if not text.lower().startswith(SCHEME):
        raise ValueError(f"{text!r} is not an s3:// URI")
    bucket, _, key = text[len(SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"{text!r} has an empty bucket name")
    if not _BUCKET.match(bucket):
        raise ValueError(f"{text!r}: {bucket!r} is not a valid bucket name")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"{text[:60]!r}...: key longer than {MAX_KEY_BYTES} bytes")
    return ObjectRef(bucket, key)


def read_text(location: str, fetch: Callable[[ObjectRef], bytes]) -> str:
    """The manifest's text from a local path or an s3:// URI (read with `fetch`)."""
    if location.lower().startswith(SCHEME):
        try:
            ref = parse_uri(location)
        except ValueError as exc:
            raise InputError(f"manifest location: {exc}") from None
        if is_prefix_key(ref.key):
            raise InputError(f"manifest location {location} is a prefix, not an object")
        data = fetch(ref)
    else:
        try:
            data = Path(location).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read manifest {location}: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise InputError("the manifest is not a text file (it contains NUL bytes)", location)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"the manifest is not UTF-8 text (byte {exc.start})", location) from None


def parse(text: str, header: bool | None = None, name: str = "manifest") -> list[ManifestRow]:
    """Rows of a manifest's text. Raises InputError listing every problem with its line."""
    lines = [line.strip() for line in text.splitlines()]
    first = next((i for i, line in enumerate(lines) if line), None)
    if first is None:
        raise InputError("the manifest is empty: expected rows of 'source,destination'", name)
    table = _read_table(lines, _delimiter(lines[first]), name)
    if header is None:
        header = not table.iat[first, 0].strip().lower().startswith(SCHEME)
        if header:
            _check_header([value.strip() for value in table.iloc[first]], first + 1, name)
    names = [value.strip() for value in table.iloc[first]]
    # A header names the columns; a first row forced to be a header (--header) that is
    # really a row of URIs is only dropped, as before names were read.
    named = header and not any(value.lower().startswith(SCHEME) for value in names)
    columns = _columns(names, first + 1, name) if named else None
    problems: list[Problem] = []
    rows: list[ManifestRow] = []
    for index, values in enumerate(table.itertuples(index=False, name=None)):
        if not lines[index] or (header and index == first):
            continue
        stripped = [value.strip() for value in values]
        fields = (
            _positional(index + 1, stripped, problems)
            if columns is None
            else _named(index + 1, stripped, columns, problems)
        )
        row = None if fields is None else _row(index + 1, fields, problems)
        if row is not None:
            rows.append(row)
    if not rows and not problems:
        problems.append(Problem("the manifest has a header but no rows"))
    problems.extend(_conflicts(rows))
    if problems:
        raise InputError(sorted(problems, key=lambda p: p.line or 0), name)
    return rows


COLUMNS = ("source", "destination", "version_id", "md5", "sha256")
EXPECTED = {"md5": 32, "sha256": 64}  # checksum columns and their length in hex digits
_ALIASES = {
    "src": "source",
    "dst": "destination",
    "dest": "destination",
    "versionid": "version_id",
    "version": "version_id",
    "md5sum": "md5",
    "sha256sum": "sha256",
}


def _columns(names: list[str], line: int, name: str) -> list[str]:
    """A header's column names, normalised; InputError naming any we do not know, or
    naming source/destination if missing."""
    columns, problems = [], []
    while names and not names[-1]:
        names = names[:-1]
    for number, raw in enumerate(names, 1):
        column = raw.strip().lower().replace("-", "_").replace(" ", "_")
        column = _ALIASES.get(column, column)
        if not raw:
            column = ""
        elif column not in COLUMNS:
            problems.append(
                Problem(
                    f"unknown column {raw!r} (column {number}) in the header: known columns are {', '.join(COLUMNS)}",
                    line,
                    raw,
                )
            )
        elif column in columns:
            problems.append(Problem(f"the column {raw!r} is named twice in the header", line, raw))
        columns.append(column)
    for needed in ("source", "destination"):
        if needed not in columns:
            problems.append(Problem(f"the header names no {needed!r} column (it has: {', '.join(names)})", line))
    if problems:
        raise InputError(problems, name)
    return columns


def _positional(line: int, values: list[str], problems: list[Problem]) -> dict[str, str] | None:
    """A headerless row's fields: source, destination[, version_id]."""
    count = len(values) - next((i for i, v in enumerate(reversed(values)) if v), len(values))
    if count not in (2, 3) or not values[0] or not values[1]:
        problems.append(
            Problem(
                f"wrong column count: expected 2 or 3 (source, destination[, version_id]), found {count}",
                line,
                "columns",
            )
        )
        return None
    return dict(zip(COLUMNS[:count], values[:count], strict=True))


def _named(line: int, values: list[str], columns: list[str], problems: list[Problem]) -> dict[str, str] | None:
    """A row's fields by the header's names."""
    surplus = [value for value in values[len(columns) :] if value]
    if surplus:
        problems.append(
            Problem(
                f"{len(columns) + len(surplus)} fields, but the header names {len(columns)} columns "
                f"({', '.join(c for c in columns if c)})",
                line,
                "columns",
            )
        )
        return None
    fields = {column: value for column, value in zip(columns, values, strict=False) if column}
    for needed in ("source", "destination"):
        if not fields.get(needed):
            problems.append(Problem(f"the {needed} is empty", line, needed))
            return None
    return fields


_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ -]{0,63}$")


def _check_header(values: list[str], line: int, name: str) -> None:
    """A first row taken for a header must read as column names: a field that is a URI,
    or almost one (`s3:/bucket/key`, `s3//bucket`, `bucket/key`), is a mistyped row,
    never a header to drop silently."""
    for column, value in enumerate(v for v in values if v):
        if not _COLUMN_NAME.match(value):
            raise InputError(
                [
                    Problem(
                        f"{value[:80]!r} is not an s3:// URI, and this first row does not look like a header "
                        "(column names such as source,destination[,version_id]): fix the URI, or pass "
                        "--header if it is one",
                        line,
                        ("source", "destination", "version_id", "column 4")[min(column, 3)],
                    )
                ],
                name,
            )


def check_delete(rows: list[ManifestRow]) -> list[Problem]:
    """Problems that only matter when --delete removes destination objects."""
    problems = []
    for row in rows:
        src, dst = row.source, row.destination
        if row.is_prefix and src.bucket == dst.bucket and src.key.startswith(dst.key):
            problems.append(
                Problem(
                    f"the source {src} lies inside the destination prefix {dst}: --delete would remove source objects",
                    row.line,
                    "destination",
                )
            )
    return problems


def _delimiter(line: str) -> str:
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    return r"\s+"


def _read_table(lines: list[str], sep: str, name: str) -> pd.DataFrame:
    # As many column names as the longest line could have fields (quoted delimiters
    # only over-count), so pandas never drops or re-indexes surplus fields: we count them.
    if sep == r"\s+":
        width = max(len(line.split()) for line in lines)
    else:
        width = max(line.count(sep) for line in lines) + 1
    try:
        return pd.read_csv(
            io.StringIO("\n".join(lines)),
            sep=sep,
            header=None,
            names=range(max(width, 2)),
            index_col=False,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            engine="python",
        ).fillna("")
    except (pd.errors.ParserError, csv.Error) as exc:
        raise InputError(f"cannot parse the manifest: {exc}", name) from None


def _row(line: int, fields: dict[str, str], problems: list[Problem]) -> ManifestRow | None:
    expected = []
    for column, digits in EXPECTED.items():
        value = fields.get(column, "").lower()
        if not value:
            continue
        if len(value) != digits or not all(c in "0123456789abcdef" for c in value):
            problems.append(Problem(f"{fields[column]!r} is not an {column} ({digits} hex digits)", line, column))
            return None
        expected.append((column, value))
    version = fields.get("version_id") or None
    if version and version.lower().startswith(SCHEME):
        problems.append(
            Problem(
                f"{version!r} is an S3 URI, not a version id: two columns are "
                "source and destination, a third is the source's version_id",
                line,
                "version_id",
            )
        )
        return None
    refs = {}
    for field in ("source", "destination"):
        text = fields[field]
        try:
            refs[field] = parse_uri(text)
        except ValueError as exc:
            problems.append(Problem(str(exc), line, field))
    if len(refs) < 2:
        return None
    src, dst = refs["source"], refs["destination"]
    if version and is_prefix_key(src.key):
        problems.append(Problem("a version_id names one object's version; this row is a prefix", line, "version_id"))
        return None
    if version:
        src = ObjectRef(src.bucket, src.key, version)
    if expected and is_prefix_key(src.key):
        problems.append(
            Problem(f"an {expected[0][0]} names one object's bytes; this row is a prefix", line, expected[0][0])
        )
        return None
    if is_prefix_key(src.key):
        if not is_prefix_key(dst.key):
            problems.append(
                Problem(
                    f"the source {src} is a prefix, so the destination must be a prefix too "
                    f"(end it with '/'), not the object {dst}",
                    line,
                    "destination",
                )
            )
            return None
        if src == dst:
            problems.append(Problem("the destination equals the source", line, "destination"))
            return None
        if src.bucket == dst.bucket and dst.key.startswith(src.key):
            problems.append(
                Problem(f"the destination {dst} lies inside its own source prefix {src}", line, "destination")
            )
            return None
    else:
        if is_prefix_key(dst.key):
            dst = ObjectRef(dst.bucket, dst.key + src.key.rsplit("/", 1)[-1])
        if (src.bucket, src.key) == (dst.bucket, dst.key) and not version:
            problems.append(Problem("the destination equals the source", line, "destination"))
            return None
    return ManifestRow(line, src, dst, expected=tuple(expected))


def _conflicts(rows: list[ManifestRow]) -> list[Problem]:
    """Two rows that could write the same destination object."""
    problems = []
    objects: dict[ObjectRef, int] = {}
    prefixes: dict[ObjectRef, int] = {}
    for row in rows:
        target = prefixes if row.is_prefix else objects
        other = target.get(row.destination)
        if other is not None:
            problems.append(
                Problem(
                    f"two rows write the same destination {row.destination} (lines {other} and {row.line})",
                    row.line,
                    "destination",
                )
            )
        else:
            target[row.destination] = row.line
    for dst, line in [*objects.items(), *prefixes.items()]:
        for ancestor in _ancestors(dst):
            other = prefixes.get(ancestor)
            if other is not None and other != line:
                problems.append(
                    Problem(
                        f"the destination {dst} lies inside the destination prefix {ancestor} of "
                        f"line {other}: both rows could write the same objects",
                        line,
                        "destination",
                    )
                )
    return problems


def _ancestors(ref: ObjectRef):
    """The prefixes above a key, bucket root first, excluding the key itself."""
    key = ref.key.rstrip("/") if ref.key.endswith("/") else ref.key
    yield ObjectRef(ref.bucket, "")
    start = 0
    while (cut := key.find("/", start)) != -1:
        yield ObjectRef(ref.bucket, key[: cut + 1])
        start = cut + 1
