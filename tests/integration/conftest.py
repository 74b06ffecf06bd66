"""Fixtures of the integration tests that need a work pool and a worker."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN
from tests.faultproxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]


def prefect_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture()
def start_worker(prefect_api, tmp_path):
    """start_worker(env): the s3flow pool, the deployments of prefect.yaml deployed with
    `env` (prefect.yaml reads its {{ $VARS }} from it), and one process worker with it."""
    procs = []

    def start(extra: dict[str, str], limit: int | None = None) -> subprocess.Popen:
        """limit: flow runs the worker runs at once (its --limit)."""
        env = {**os.environ, **prefect_api.env(), "PREFECT_WORKER_QUERY_SECONDS": "1", **extra}
        prefect_cli("work-pool", "create", "s3flow", "--type", "process", "--overwrite", env=env)
        prefect_cli("deploy", "--all", env=env)
        log = (tmp_path / f"worker-{len(procs)}.log").open("wb")
        more = ["--limit", str(limit)] if limit else []
        proc = subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "s3flow", *more],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture()
def worker(start_worker, seaweed):
    """One process worker whose runs use SeaweedFS."""
    return start_worker(seaweed.env())


def stop(proc: subprocess.Popen) -> None:
    """Stop a worker (it ignores SIGTERM: two SIGINTs) or any other process group we started."""
    for _ in range(2):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture()
def proxy(seaweed, monkeypatch):
    """A fault proxy in front of SeaweedFS; this process's AWS environment points at it."""
    server = FaultProxy(seaweed.port).start()
    for name, value in {**seaweed.env(), "AWS_ENDPOINT_URL": server.url}.items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()
