"""Fixtures: real servers on loopback, started once per test session.

Each session has its own PREFECT_HOME (set before Prefect is imported) and
free ports, so test runs never share state with each other or with a user.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="s3flow-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "client-home")
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# The test server's scheduler looks for schedules every 2 s (60 s by default), so a
# test's short interval schedule gets its runs at once, made by the real scheduler.
os.environ["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "2"
# No real AWS account is ever reached: servers below are on loopback.
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN"):
    os.environ.pop(name, None)
os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(_HOME / "none")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from s3flow.local import LOOPBACK, PrefectServer, SeaweedS3, free_port, put_multipart  # noqa: E402,F401

VENV_BIN = Path(sys.executable).parent


def pytest_sessionfinish(session, exitstatus):
    """Servers are stopped by now: remove their data; keep their logs if a test failed."""
    if exitstatus == 0:
        shutil.rmtree(_HOME, ignore_errors=True)
        return
    shutil.rmtree(_HOME / "seaweed" / "store", ignore_errors=True)
    print(f"\nserver logs of this test session: {_HOME}")
_names = itertools.count()


@pytest.fixture(scope="session")
def seaweed():
    server = SeaweedS3(_HOME / "seaweed").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.logging.handlers import APILogWorker

    server = PrefectServer(_HOME / "server-home").start()
    try:
        yield server
        APILogWorker.drain_all(timeout=10)  # send queued logs while the server still listens
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto():
    """moto's S3 server: a lighter fake, for what SeaweedFS cannot store (e.g. `//` in keys)."""
    import boto3
    from botocore.config import Config

    port = free_port()
    log = (_HOME / "moto.log").open("wb")
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{LOOPBACK}:{port}"
    # moto labels a copy's checksum with the algorithm asked for but computes it with the
    # source's (CRC32 under the name CRC32C): the test client checks bytes, not that label.
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(response_checksum_validation="when_required"))
    import time

    for _ in range(100):
        try:
            client.list_buckets()
            break
        except Exception:
            time.sleep(0.2)
    yield url, client
    proc.terminate()
    proc.wait(10)


MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture()
def moto_env(moto, monkeypatch):
    """This process's AWS environment set to moto's server; (url, client)."""
    url, client = moto
    for name, value in {"AWS_ENDPOINT_URL": url, **MOTO_CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    return url, client


@pytest.fixture()
def prefect_api(prefect_server):
    """Point this process's Prefect client at the session's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server


@pytest.fixture()
def s3_env(seaweed, monkeypatch):
    """This process's AWS environment set to SeaweedFS, as a user's shell would be."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed


@pytest.fixture()
def buckets(seaweed):
    """Make fresh buckets with unique names: `src, dst = buckets("src", "dst")`."""
    client = seaweed.client()

    def make(*roles: str) -> list[str]:
        names = []
        for role in roles:
            name = f"{role}-{next(_names)}-{uuid.uuid4().hex[:6]}"
            client.create_bucket(Bucket=name)
            names.append(name)
        return names

    return make


@pytest.fixture()
def write_manifest(tmp_path):
    def write(text: str, name: str = "manifest.csv") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def listing(client, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object of a bucket (under a prefix) with its bytes."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `s3flow` program in its own process, as a user runs it."""
    full = {**os.environ, **env}
    return subprocess.run([str(VENV_BIN / "s3flow"), *args], env=full, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
