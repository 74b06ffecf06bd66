"""Fixtures of the integration tests that need a work pool and a worker."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN

REPO = Path(__file__).resolve().parents[2]


def prefect_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture()
def worker(prefect_api, seaweed, tmp_path):
    """The s3flow pool, the deployments of prefect.yaml, and one process worker."""
    env = {**os.environ, **seaweed.env(), **prefect_api.env(), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    prefect_cli("work-pool", "create", "s3flow", "--type", "process", "--overwrite", env=env)
    prefect_cli("deploy", "--all", env=env)
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "s3flow"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    yield proc
    for _ in range(2):  # a worker ignores SIGTERM; two SIGINTs stop it
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
