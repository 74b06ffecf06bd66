import pytest

from s3flow.errors import InputError
from s3flow.filters import included, parse

KEYS = ["a.bam", "a.bam.bai", "logs/run.log", "logs/debug.log", "tmp/x.tmp", "deep/dir/b.bam"]


@pytest.mark.parametrize("filters, expected", [
    ([], KEYS),
    (["exclude:*.tmp"], [k for k in KEYS if k != "tmp/x.tmp"]),
    (["exclude:*", "include:*.bam"], ["a.bam", "deep/dir/b.bam"]),
    (["exclude:logs/*", "include:logs/run.log"], [k for k in KEYS if k != "logs/debug.log"]),
    (["include:*.bam"], KEYS),
    (["include:*.bam", "exclude:*"], []),
    (["exclude:*", "include:a.ba?"], ["a.bam"]),
])
def test_the_documented_table(filters, expected):
    rules = parse(filters)
    assert [k for k in KEYS if included(k, rules)] == expected


def test_patterns_are_case_sensitive():
    assert not included("A.BAM", parse(["exclude:*", "include:*.bam"]))


@pytest.mark.parametrize("bad", ["*.bam", "keep:*.bam", "include:"])
def test_malformed_filters_are_bad_input(bad):
    with pytest.raises(InputError, match="include:PATTERN"):
        parse([bad])
