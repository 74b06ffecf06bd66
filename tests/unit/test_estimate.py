import json

import pytest

from s3flow.config import GiB, MiB, TransferConfig
from s3flow.errors import InputError
from s3flow.estimate import DEFAULT_PRICES, Estimate, load_prices, text
from s3flow.record import FAILED, SKIPPED, WOULD_COPY, WOULD_DELETE, FileResult


def result(status, source, size, line=1, error="", destination=None):
    return FileResult(source, destination or source.replace("src", "dst"), status, size=size,
                      line=line, error_code=error.partition(": ")[0], error_message=error.partition(": ")[2])


def test_plan_counts_requests_cost_and_flags():
    config = TransferConfig(multipart_threshold=100 * MiB, part_size=100 * MiB)
    plan = Estimate(config, dict(DEFAULT_PRICES), object_lines=frozenset({2}))
    plan.add([
        result(WOULD_COPY, "s3://src/run/a.fq", 10 * MiB),            # 1 CopyObject
        result(WOULD_COPY, "s3://src/run/b.bam", 6 * GiB),            # 62 parts of 100 MiB
        result(SKIPPED, "s3://src/run/c.fq", 5),
        result(WOULD_DELETE, "", 7, destination="s3://dst/run/old"),
        result(WOULD_COPY, "s3://src/single/x", 1, line=2),          # object row: 2 HEADs + copy
        result(FAILED, "s3://src/cold/y", 3 * GiB, error="InvalidObjectState: restore it"),
    ])
    plan.finish(listed_pages=4)
    got = plan.to_json()
    assert (got["copy"]["objects"], got["copy"]["bytes"]) == (3, 10 * MiB + 6 * GiB + 1)
    assert got["over_5gib"]["examples"] == ["s3://src/run/b.bam"]
    assert got["needs_restore"]["objects"] == 1 and got["failed"]["errors"] == {"InvalidObjectState": 1}
    assert got["requests"] == {"list": 4, "head": 3, "get_tagging": 1, "copy_object": 2,
                               "multipart": 2, "upload_part_copy": 62, "delete": 1, "total": 75}
    assert got["cost_usd"]["total"] == pytest.approx((4 + 2 + 2 + 62) * 0.005 / 1000 + 4 * 0.0004 / 1000)
    assert got["busiest_prefixes"]["source"][0] == {"prefix": "s3://src/run/", "requests": 63}
    assert "upload_part_copy 62" in text(got)


def test_prices_can_be_overridden_and_are_checked(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"transfer_per_gb": 0.02}))
    assert load_prices(str(path)) == {**DEFAULT_PRICES, "transfer_per_gb": 0.02}
    path.write_text(json.dumps({"class_z": 1}))
    with pytest.raises(InputError, match="class_z"):
        load_prices(str(path))
    path.write_text("not json")
    with pytest.raises(InputError, match="cannot read the price table"):
        load_prices(str(path))
