"""A newcomer's path, exactly as the README's quick start says: `make demo`, then `make
serve` (the demo's servers back, with its data), then `plan`, `status`, `history` and the
UI with the environment it printed, in a fresh folder."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from tests.conftest import VENV_BIN


def test_from_make_demo_to_plan_status_history_and_the_ui(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "PREFECT_API"))}
    demo = subprocess.run([sys.executable, "-m", "s3flow.demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "make serve" in demo.stdout

    serve = subprocess.Popen([sys.executable, "-m", "s3flow.demo", "serve"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        printed = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            assert line, "make serve ended early:\n" + "".join(printed)
            printed.append(line)
            if "Ctrl-C stops both servers" in line:
                break
        text = "".join(printed)
        exported = dict(re.findall(r"^export (\w+)=(\S+)$", text, re.M))
        assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PREFECT_API_URL"} <= set(exported)
        assert (tmp_path / ".demo" / "env").read_text().count("export ") == len(exported)
        shell = {**env, **exported}
        [run_id] = re.findall(r"s3flow status ([0-9a-f-]{36})", text)

        def s3flow(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(VENV_BIN / "s3flow"), *args], cwd=tmp_path, env=shell, capture_output=True,
                                  text=True, timeout=300)

        plan = s3flow("plan", ".demo/batch-42.csv", "--json")
        assert plan.returncode == 0, plan.stderr
        found = json.loads(plan.stdout)
        assert found["copy"]["objects"] == 0 and found["skip"]["objects"] > 2000  # the demo copied them all

        status = s3flow("status", run_id, "--json")
        assert status.returncode == 0, status.stderr
        status = json.loads(status.stdout)
        assert status["state"] == "COMPLETED" and status["files"] == found["skip"]["objects"]
        assert set(status["counts"]) == {"copied"}

        [history_command] = re.findall(r"(s3flow history \S+)", text)
        history = s3flow(*history_command.split()[1:])
        assert history.returncode == 0 and "COPIED" in history.stdout and run_id in history.stdout

        ui = re.search(r"The UI: (http://\S+)", text).group(1)
        with urllib.request.urlopen(ui, timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        with urllib.request.urlopen(f"{exported['PREFECT_API_URL']}/flow_runs/{run_id}", timeout=30) as answer:
            assert json.loads(answer.read())["state"]["type"] == "COMPLETED"
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
