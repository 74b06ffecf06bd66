"""--include / --exclude: which keys of a prefix row take part in a transfer.

Every key is included to start with; filters are applied in the order given and
the last one whose pattern matches decides (as in `aws s3 sync`). Patterns are
shell globs (fnmatch, case-sensitive: `*` also crosses `/`, `?` one character,
`[abc]` a set) matched against the key below the row's prefix. A destination
object a filter excludes is never deleted by --delete.

| filters (in order)                          | copies from s3://src/run/                |
|---------------------------------------------|------------------------------------------|
| (none)                                      | everything                               |
| --exclude '*.tmp'                           | everything but *.tmp                     |
| --exclude '*' --include '*.bam'             | only *.bam                               |
| --exclude 'logs/*' --include 'logs/run.log' | everything but logs/, except logs/run.log|
| --include '*.bam'                           | everything (nothing excluded it first)   |
| --include '*.bam' --exclude '*'             | nothing (the last match wins)            |
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from .errors import InputError

KINDS = ("include", "exclude")
Filters = tuple[tuple[str, str], ...]


def parse(items: list[str] | None) -> Filters:
    """Flow-parameter form, in order: ["exclude:*", "include:*.bam"]."""
    parsed = []
    for item in items or ():
        kind, sep, pattern = item.partition(":")
        if not sep or kind not in KINDS or not pattern:
            raise InputError(f"filter {item!r}: expected include:PATTERN or exclude:PATTERN")
        parsed.append((kind, pattern))
    return tuple(parsed)


def included(key: str, filters: Filters) -> bool:
    keep = True
    for kind, pattern in filters:
        if fnmatchcase(key, pattern):
            keep = kind == "include"
    return keep
