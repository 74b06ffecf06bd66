"""`s3flow bridge http` as a real process in front of a real Prefect server."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import UTC, datetime

import httpx
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

from s3flow.local import LOOPBACK, free_port
from tests.conftest import VENV_BIN
from tests.integration.conftest import stop


def eventbridge(bucket: str, key: str) -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
            "time": datetime.now(UTC).isoformat(timespec="seconds"), "detail": {"bucket": {"name": bucket}, "reason": "PutObject",
                                                       "object": {"key": key, "size": 7, "etag": "e7"}}}


def test_http_bridge_emits_only_for_requests_it_accepts(prefect_api, tmp_path):
    port = free_port()
    bucket = f"global-builds-{uuid.uuid4().hex[:6]}"
    log = (tmp_path / "bridge.log").open("wb")
    bridge = subprocess.Popen([str(VENV_BIN / "s3flow"), "bridge", "http", "--port", str(port)],
                              env={**os.environ, **prefect_api.env(), "S3FLOW_BRIDGE_SECRET": "s3cret"},
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{LOOPBACK}:{port}/"
    try:
        for _ in range(100):
            try:
                httpx.post(url, content=b"{}", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        rejected = httpx.post(url, json=eventbridge(bucket, "nope.zip"))
        wrong = httpx.post(url, json=eventbridge(bucket, "nope.zip"), headers={"X-S3flow-Secret": "guess"})
        garbage = httpx.post(url, content=b"<xml/>", headers={"X-S3flow-Secret": "s3cret"})
        accepted = httpx.post(url, json=eventbridge(bucket, "builds/build+123.zip"),
                              headers={"Authorization": "Bearer s3cret"})
    finally:
        stop(bridge)

    assert (rejected.status_code, wrong.status_code, garbage.status_code, accepted.status_code) == \
        (401, 401, 400, 200)
    assert accepted.json()["events"] == 1
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while True:
            answer = client.request("POST", "/events/filter", json={"filter": json.loads(EventFilter(
                event=EventNameFilter(name=["aws.s3.object.created"]),
                resource=EventResourceFilter(id=[f"aws.s3.bucket.{bucket}"])).model_dump_json())})
            found = answer.json()["events"]
            if found or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert [e["payload"]["key"] for e in found] == ["builds/build 123.zip"]  # decoded; no rejected one
