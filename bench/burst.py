"""A build drop: N objects created at once in a watched bucket, replicated into two
buckets through the whole event path, on a Prefect server on SQLite and on PostgreSQL.

The objects go to SeaweedFS (the S3 server), and each object's event, as EventBridge
sends it ("Object Created"), to `s3flow bridge http` (an EventBridge API destination),
256 deliveries at once (an API destination may invoke up to 300 a second); the bridge batches them; prefect.yaml's `s3-events` deployment
(replicate-objects) runs on a process worker. `--path sqs` sends S3's notification
messages through an SQS queue on moto instead; moto's SQS delivers about 20 messages a
second with 1,000 queued (measured: one receiver 1,000 in 48 s), so that path measures
moto, not the bridge. Measured:

- seconds from the first upload until all 2N replicas exist;
- the worker's peak memory (its process tree: the worker and the flow runs' processes);
- flow runs it took;
- the lag of a lone upload (upload to both replicas), p50 of `--singles` uploads.

    bench/burst.py [--objects 1000] [--singles 5] [--databases sqlite,postgres] [--path http|sqs]

Uploads go 32 threads at a time; "uploaded in" is how long the drop itself took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3flow.local import LOOPBACK, PostgresServer, PrefectServer, SeaweedS3, free_port  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def tree_rss(root: int) -> int:
    """Bytes resident in a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def prefect(*args: str, env: dict) -> None:
    done = subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])


def one_database(database: str, objects: int, singles: int, work: Path, path: str) -> dict:
    import boto3
    import httpx

    port = free_port()
    moto = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://{LOOPBACK}:{port}"
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    for _ in range(100):
        try:
            sqs.list_queues()
            break
        except Exception:
            time.sleep(0.2)
    seaweed = SeaweedS3(work / f"seaweed-{database}").start()
    s3 = seaweed.client()
    # S3 from SeaweedFS, SQS from moto (the bridge's own AWS_ENDPOINT_URL_SQS).
    aws = {**seaweed.env(), "AWS_ENDPOINT_URL_SQS": url}
    postgres = PostgresServer(work / f"postgres-{database}").start() if database == "postgres" else None
    server = PrefectServer(work / f"prefect-{database}", database_url=postgres.url if postgres else None).start()
    procs: list[subprocess.Popen] = []
    try:
        tag = uuid.uuid4().hex[:6]
        watched, replicas = f"builds-{tag}", [f"region-a-{tag}", f"region-b-{tag}"]
        for bucket in (watched, *replicas):
            s3.create_bucket(Bucket=bucket)
        body = os.urandom(16 << 10)
        queue = sqs.create_queue(QueueName=f"events-{tag}")["QueueUrl"]
        bridge_port = free_port()
        http = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=300))

        def delivered(key: str) -> None:
            """Upload one object and deliver its EventBridge event, as an API destination does."""
            etag = s3.put_object(Bucket=watched, Key=key, Body=body)["ETag"].strip('"')
            event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
                     "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                     "detail": {"bucket": {"name": watched}, "reason": "PutObject",
                                "object": {"key": key, "size": len(body), "etag": etag}}}
            why = ""
            for _ in range(5):  # EventBridge delivers again on a 5xx or a broken connection
                try:
                    answer = http.post(f"http://{LOOPBACK}:{bridge_port}/", json=event,
                                       headers={"X-S3flow-Secret": "bench"})
                except httpx.TransportError as exc:
                    why = str(exc)
                    continue
                if answer.status_code == 200:
                    return
                why = f"{answer.status_code} {answer.text}"
            raise SystemExit(f"the bridge refused {key}: {why}")

        def created(keys: list[str]) -> None:
            """Upload objects and send their notifications (one message each, S3's shape;
            ten to a SendMessageBatch call, which only spares the bench's own CPU)."""
            entries = []
            for n, key in enumerate(keys):
                etag = s3.put_object(Bucket=watched, Key=key, Body=body)["ETag"].strip('"')
                record = {"eventName": "ObjectCreated:Put", "eventTime": datetime.now(UTC).isoformat(),
                          "s3": {"bucket": {"name": watched}, "object": {
                              "key": quote_plus(key, safe="/"), "size": len(body), "eTag": etag,
                              "sequencer": uuid.uuid4().hex}}}
                entries.append({"Id": str(n), "MessageBody": json.dumps({"Records": [record]})})
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        env = {**os.environ, **aws, **server.env(), "PREFECT_WORKER_QUERY_SECONDS": "1",
               "S3FLOW_WATCHED_BUCKET": watched, "S3FLOW_REPLICA_BUCKETS": ",".join(replicas),
               "S3FLOW_MANIFEST_BUCKET": f"none-{tag}", "S3FLOW_MANIFEST_PREFIX": "none/"}
        subprocess.run([str(VENV_BIN / "s3flow"), "setup"], env=env, capture_output=True, check=True)
        prefect("work-pool", "create", "s3flow", "--type", "process", "--overwrite", env=env)
        prefect("deploy", "--all", env=env)
        worker = subprocess.Popen([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "s3flow"], cwd=ROOT,
                                  env=env, stdout=(work / f"worker-{database}.log").open("wb"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        command = (["bridge", "sqs", "--queue-url", queue, "--wait-seconds", "1"] if path == "sqs"
                   else ["bridge", "http", "--port", str(bridge_port)])
        bridge = subprocess.Popen([str(VENV_BIN / "s3flow"), *command], env={**env, "S3FLOW_BRIDGE_SECRET": "bench"},
                                  stdout=(work / f"bridge-{database}.log").open("wb"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        procs += [worker, bridge]
        time.sleep(5)  # the worker's first poll, the bridge's first receive

        peak = [0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                peak[0] = max(peak[0], tree_rss(worker.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        keys = [f"release-42/artifact-{i:04d}.bin" for i in range(objects)]
        started = time.monotonic()
        if path == "sqs":
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(created, [keys[i : i + 10] for i in range(0, len(keys), 10)]))
        else:
            with ThreadPoolExecutor(256) as pool:
                list(pool.map(delivered, keys))
        uploaded = time.monotonic() - started

        def replicated() -> int:
            total = 0
            for bucket in replicas:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="release-42/")
                total += sum(len(page.get("Contents", ())) for page in pages)
            return total

        done_at = None
        while time.monotonic() - started < 600:
            if replicated() >= 2 * objects:
                done_at = time.monotonic() - started
                break
            time.sleep(1)
        sampling.set()
        sampler.join()

        lags = []
        for n in range(singles):
            key = f"single/lone-{n}.bin"
            put = time.monotonic()
            created([key]) if path == "sqs" else delivered(key)
            while time.monotonic() - put < 120:
                try:
                    for bucket in replicas:
                        s3.head_object(Bucket=bucket, Key=key)
                    lags.append(time.monotonic() - put)
                    break
                except Exception:
                    time.sleep(0.2)
            time.sleep(3)  # a lone upload, not a burst
        runs = subprocess.run([str(VENV_BIN / "prefect"), "flow-run", "ls", "--flow-name", "replicate-objects",
                               "--limit", "200"], env=env, capture_output=True, text=True).stdout.count("replicate")
        return {
            "database": database,
            "path": path,
            "objects": objects,
            "upload_seconds": round(uploaded, 1),
            "all_replicated_seconds": None if done_at is None else round(done_at, 1),
            "worker_peak_mib": round(peak[0] / 2**20),
            "single_lag_p50": round(statistics.median(lags), 1) if lags else None,
            "single_lags": [round(lag, 1) for lag in lags],
            "runs_listed": runs,
        }
    finally:
        for proc in procs:
            for _ in range(2):
                if proc.poll() is None:
                    os.killpg(proc.pid, 2)
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        pass
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
        server.stop()
        if postgres:
            postgres.stop()
        seaweed.stop()
        moto.terminate()
        moto.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--path", choices=("http", "sqs"), default="http")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3flow-bench-burst-"))
    results = [one_database(db, args.objects, args.singles, work, args.path) for db in args.databases.split(",")]
    print(json.dumps(results, indent=1))
    print("\n| Prefect database | objects | uploaded in, s | all 2N replicas, s | worker peak, MiB | lone upload lag p50, s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['database']} | {r['objects']:,} | {r['upload_seconds']} | {r['all_replicated_seconds']} | "
              f"{r['worker_peak_mib']} | {r['single_lag_p50']} |")
    print(f"(logs: {work})")


if __name__ == "__main__":
    main()
