"""`make demo`: a real transfer on an embedded default, start to finish.

Starts SeaweedFS and a Prefect server on loopback, fills a source bucket with a
sequencing batch of a few thousand objects (four large ones uploaded in parts,
which are copied in the same parts), writes a manifest with prefix rows and object rows, runs
`s3flow transfer` twice (the second run finds nothing to copy), checks the
destination, prints where the results are, and stops both servers.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3flow.local import PrefectServer, SeaweedS3, put_multipart

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
            put_multipart(client, SOURCE, key, block[:size], 8 * MiB, ContentType="application/cram",
                          **properties)
        else:
            client.put_object(Bucket=SOURCE, Key=key, Body=block[:size],
                              ContentType="application/octet-stream", **properties)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, objects.items()))


def write_manifest(path: Path) -> None:
    rows = ["source,destination"]
    rows += [f"s3://{SOURCE}/batch-42/{s}/,s3://{ANALYSIS}/incoming/batch-42/{s}/" for s in SAMPLES]
    rows += [f"s3://{SOURCE}/batch-42/samplesheet.csv,s3://{ARCHIVE}/batch-42/",
             f"s3://{SOURCE}/batch-42/run-report.html,s3://{ARCHIVE}/batch-42/reports/run-report.html"]
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
        print(f"uploading a sample batch: {len(objects):,} objects, "
              f"{sum(objects.values()) / MiB:,.0f} MiB, to s3://{SOURCE}/batch-42/", flush=True)
        fill(client, objects)
        manifest = DEMO / "batch-42.csv"
        write_manifest(manifest)
        print(f"\nmanifest {manifest}:\n{manifest.read_text()}", flush=True)
        # Links the transfer prints and writes point at the UI `make ui` serves after the
        # demo (this server's port is gone by then).
        env = {**os.environ, **s3.env(), **prefect.env(), "PREFECT_UI_URL": UI_URL}
        command = [str(Path(sys.executable).with_name("s3flow")), "transfer", str(manifest),
                   "--multipart-threshold-mib", "16", "--part-size-mib", "8"]
        print("$ " + " ".join(command[1:]), flush=True)
        log = (DEMO / "transfer.log").open("w")
        first = subprocess.run(command, env=env, stderr=log)
        print("\nthe same transfer again (a sync copies only what is missing or changed):", flush=True)
        second = subprocess.run([*command, "--json"], env=env, stderr=log, stdout=subprocess.PIPE,
                                text=True)
        print(second.stdout.strip())
        at_analysis, at_archive = count(client, ANALYSIS), count(client, ARCHIVE)
        print(f"\ndestination s3://{ANALYSIS}: {at_analysis[0]:,} objects, {at_analysis[1] / MiB:,.1f} MiB; "
              f"s3://{ARCHIVE}: {at_archive[0]} objects")
        print(f"\nSee every file's result in the Prefect UI: run `make ui` and open {UI_URL}"
              " (Artifacts, or the flow run's Artifacts tab),\nor from the shell: "
              f"PREFECT_HOME={(DEMO / 'prefect').resolve()} .venv/bin/prefect artifact ls")
        arrived = (at_analysis[0] + at_archive[0], at_analysis[1] + at_archive[1])
        ok = first.returncode == second.returncode == 0 and arrived == (len(objects), sum(objects.values()))
        print("\ndemo " + ("passed" if ok else f"FAILED (transfer log: {log.name})") + ": stopping the servers.")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
