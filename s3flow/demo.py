"""`make demo`: a real transfer on an embedded default, start to finish; `make serve`:
the demo's servers back, with its data, to go on from there.

The demo starts SeaweedFS and a Prefect server on loopback, fills a source bucket
with a sequencing batch of a few thousand objects (four large ones uploaded in
parts, which are copied in the same parts), writes a manifest with prefix rows and
object rows, runs `s3flow transfer` twice (the second run finds nothing to copy),
checks the destination, prints where the results are, and stops both servers. Their
data stays in .demo/.

`python -m s3flow.demo serve` (`make serve`) starts the same two servers on that data
(Prefect's UI on 127.0.0.1:4200), prints the environment to export and the commands
to try (`plan`, `status`, `history`, the UI), and runs until Ctrl-C.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3flow.local import PrefectServer, SeaweedS3, free_port, put_multipart

DEMO = Path(".demo")
SOURCE, ANALYSIS, ARCHIVE = "sequencer-drop", "analysis", "archive"
SAMPLES = ["NA12878", "NA12891", "NA12892", "HG002"]
SMALL_PER_SAMPLE = 600
MiB = 1024 * 1024
UI_URL = "http://127.0.0.1:4200"  # where `make ui` serves the demo's runs


def sample_objects(rng: random.Random) -> dict[str, int]:
    """Key -> size for the batch: many small files and a few large ones per sample."""
    objects = {}
    for sample in SAMPLES:
        for i in range(SMALL_PER_SAMPLE):
            objects[f"batch-42/{sample}/qc/tile-{i:04d}.json"] = rng.randint(1024, 48 * 1024)
        objects[f"batch-42/{sample}/{sample}.cram"] = rng.randint(20 * MiB, 40 * MiB)
    objects["batch-42/samplesheet.csv"] = 4096
    objects["batch-42/run-report.html"] = 150 * 1024
    return objects


def fill(client, objects: dict[str, int]) -> None:
    client.create_bucket(Bucket=SOURCE)
    client.create_bucket(Bucket=ANALYSIS)
    client.create_bucket(Bucket=ARCHIVE)
    block = os.urandom(41 * MiB)

    def put(item):
        key, size = item
        properties = dict(Metadata={"run": "batch-42"}, Tagging="project=demo")
        if key.endswith(".cram"):  # large files arrive in parts, as a sequencer's uploader sends them
            put_multipart(client, SOURCE, key, block[:size], 8 * MiB, ContentType="application/cram", **properties)
        else:
            client.put_object(
                Bucket=SOURCE, Key=key, Body=block[:size], ContentType="application/octet-stream", **properties
            )

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, objects.items()))


def write_manifest(path: Path) -> None:
    rows = ["source,destination"]
    rows += [f"s3://{SOURCE}/batch-42/{s}/,s3://{ANALYSIS}/incoming/batch-42/{s}/" for s in SAMPLES]
    rows += [
        f"s3://{SOURCE}/batch-42/samplesheet.csv,s3://{ARCHIVE}/batch-42/",
        f"s3://{SOURCE}/batch-42/run-report.html,s3://{ARCHIVE}/batch-42/reports/run-report.html",
    ]
    path.write_text("\n".join(rows) + "\n")


def count(client, bucket: str) -> tuple[int, int]:
    objects = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            objects += 1
            size += item["Size"]
    return objects, size


def main() -> int:
    shutil.rmtree(DEMO / "seaweed", ignore_errors=True)
    print("s3flow demo: starting SeaweedFS and a Prefect server on 127.0.0.1 ...", flush=True)
    with SeaweedS3(DEMO / "seaweed") as s3, PrefectServer((DEMO / "prefect").resolve()) as prefect:
        client = s3.client()
        objects = sample_objects(random.Random(42))
        print(
            f"uploading a sample batch: {len(objects):,} objects, "
            f"{sum(objects.values()) / MiB:,.0f} MiB, to s3://{SOURCE}/batch-42/",
            flush=True,
        )
        fill(client, objects)
        manifest = DEMO / "batch-42.csv"
        write_manifest(manifest)
        print(f"\nmanifest {manifest}:\n{manifest.read_text()}", flush=True)
        # Links the transfer prints and writes point at the UI `make ui` serves after the
        # demo (this server's port is gone by then).
        env = {**os.environ, **s3.env(), **prefect.env(), "PREFECT_UI_URL": UI_URL}
        command = [
            str(Path(sys.executable).with_name("s3flow")),
            "transfer",
            str(manifest),
            "--multipart-threshold-mib",
            "16",
            "--part-size-mib",
            "8",
        ]
        print("$ " + " ".join(command[1:]), flush=True)
        log = (DEMO / "transfer.log").open("w")
        first = subprocess.run(command, env=env, stderr=log, stdout=subprocess.PIPE, text=True)
        print(first.stdout.strip(), flush=True)
        if found := re.search(r"^flow run\s+([0-9a-f-]{36})", first.stdout, re.M):
            (DEMO / "last-run").write_text(found.group(1) + "\n")
        print("\nthe same transfer again (a sync copies only what is missing or changed):", flush=True)
        second = subprocess.run([*command, "--json"], env=env, stderr=log, stdout=subprocess.PIPE, text=True)
        print(second.stdout.strip())
        at_analysis, at_archive = count(client, ANALYSIS), count(client, ARCHIVE)
        print(
            f"\ndestination s3://{ANALYSIS}: {at_analysis[0]:,} objects, {at_analysis[1] / MiB:,.1f} MiB; "
            f"s3://{ARCHIVE}: {at_archive[0]} objects"
        )
        print(
            "\nNext: `make serve` brings these servers back with the demo's data and prints what to "
            f"export; then try `s3flow plan`, `s3flow status`, `s3flow history` and the UI at {UI_URL}."
        )
        arrived = (at_analysis[0] + at_archive[0], at_analysis[1] + at_archive[1])
        ok = first.returncode == second.returncode == 0 and arrived == (len(objects), sum(objects.values()))
        print("\ndemo " + ("passed" if ok else f"FAILED (transfer log: {log.name})") + ": stopping the servers.")
        return 0 if ok else 1


def serve() -> int:
    """The demo's S3 and Prefect servers on its data, until Ctrl-C (or SIGTERM)."""
    if not (DEMO / "seaweed" / "store").exists():
        print("s3flow demo: no demo data here yet: run `make demo` first", file=sys.stderr)
        return 2
    s3_port = _port_or_free(8333)
    ui_port = _port_or_free(4200)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("starting the demo's SeaweedFS and Prefect server on 127.0.0.1 ...", flush=True)
    with (
        SeaweedS3(DEMO / "seaweed", port=s3_port) as s3,
        PrefectServer((DEMO / "prefect").resolve(), port=ui_port) as prefect,
    ):
        env = {**s3.env(), "PREFECT_API_URL": prefect.api_url}
        run = (DEMO / "last-run").read_text().strip() if (DEMO / "last-run").exists() else "<flow-run-id>"
        (DEMO / "env").write_text("".join(f"export {name}={value}\n" for name, value in env.items()))
        print("\nIn another shell, export this (or `. .demo/env`):\n")
        for name, value in env.items():
            print(f"export {name}={value}")
        print(
            f"""
then try, on the demo's data:
  .venv/bin/s3flow plan .demo/batch-42.csv                  # what a transfer would do now: all identical
  .venv/bin/s3flow status {run}      # the demo's first transfer, file by file
  .venv/bin/s3flow history s3://{ANALYSIS}/incoming/batch-42/NA12878/NA12878.cram
  .venv/bin/prefect flow-run ls                             # every run
The UI: {prefect.ui_url} (a run's Artifacts tab: its summary and per-file table).
Ctrl-C stops both servers; the data stays in .demo/.""",
            flush=True,
        )
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping the servers", flush=True)
    return 0


def _port_or_free(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["serve"] else main())
