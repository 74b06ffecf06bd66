"""`pip install .` lays flows/ and blocks/ inside the s3flow package: site-packages gains
no top-level `flows` or `blocks`, and the deployments' pull step still finds the
entrypoints (flows/transfer.py) relative to the installed package."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_plain_install_has_no_top_level_flows_or_blocks(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp_path / "wheel"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "wheel").glob("s3flow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert "flows" not in tops and "blocks" not in tops, sorted(tops)
    assert {"s3flow/flows/transfer.py", "s3flow/blocks/sns.py", "s3flow/transfer.py"} <= set(names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "s3flow = s3flow.blocks.sns" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = """
import importlib.util, json, os, sys
tops = {"flows": importlib.util.find_spec("flows") is not None,
        "blocks": importlib.util.find_spec("blocks") is not None}
from s3flow.flows.steps import project_directory
import s3flow.flows.transfer as transfer
found = project_directory()  # the worker's pull step: into the folder that holds flows/
print(json.dumps({**tops, "module": transfer.__file__, "directory": found["directory"], "cwd": os.getcwd(),
                  "entrypoint": os.path.exists("flows/transfer.py")}))
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "PREFECT_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert not found["flows"] and not found["blocks"]
    assert found["module"].startswith(str(target))
    assert found["directory"] == found["cwd"] == str(target / "s3flow") and found["entrypoint"]
