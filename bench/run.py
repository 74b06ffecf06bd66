"""Side-by-side benchmark: s3flow against s5cmd, rclone, `aws s3 sync` and a boto3 pool.

One command (`make bench`) starts a local SeaweedFS and Prefect server, generates the
data sets, and copies each set bucket to bucket with every tool, several times, in one
go on the same machine and server. Each run gets a fresh destination bucket (deleted
after it, which frees SeaweedFS's disk at once), is verified object by object against
the source, and is timed from the tool's start to its exit. The client's CPU and peak
RSS come from GNU time, so they include everything the tool's process tree did; the
servers' CPU during each run comes from /proc.

    bench/run.py [--sets small,large,mixed] [--tools ...] [--repeat 3] [--small-count N] ...

The table is printed and written to bench/results/<date>.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3flow.local import PrefectServer, SeaweedS3  # noqa: E402

MiB = 1 << 20
TOOLS_BIN = ROOT / ".venv-bench" / "bin"
VENV_BIN = Path(sys.executable).parent
WORKERS = 64  # the concurrency every tool is given (s5cmd's default is 256: it keeps it)


def size(text: str) -> int:
    units = {"k": 1 << 10, "m": MiB, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


@dataclass
class DataSet:
    name: str
    prefix: str
    sizes: dict[str, int]  # key (under prefix) -> size

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def data_sets(args) -> list[DataSet]:
    rng = random.Random(42)
    sets = []
    if "small" in args.sets:
        sets.append(DataSet("SMALL", "small/", {f"small/{i // 1000:03d}/obj-{i:06d}.bin": args.small_size
                                                for i in range(args.small_count)}))
    if "large" in args.sets:
        sets.append(DataSet("LARGE", "large/", {f"large/blob-{i:02d}.bin": args.large_size
                                                for i in range(args.large_count)}))
    if "mixed" in args.sets:  # per sample: a CRAM, its index, a VCF, QC files (1 MiB .. max)
        sizes = {}
        for s in range(args.mixed_samples):
            sample = f"mixed/batch-7/S{s:03d}"
            sizes[f"{sample}/S{s:03d}.cram"] = int(MiB * 2 ** rng.uniform(7, 9) * args.mixed_max / (512 * MiB))
            sizes[f"{sample}/S{s:03d}.cram.crai"] = MiB
            sizes[f"{sample}/S{s:03d}.vcf.gz"] = int(MiB * 2 ** rng.uniform(2, 5))
            for q in range(12):
                sizes[f"{sample}/qc/metrics-{q:02d}.json"] = int(MiB * rng.uniform(1, 2))
        sets.append(DataSet("MIXED", "mixed/", sizes))
    return sets


def upload(client, bucket: str, data: DataSet) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=8)
    blocks = {n: os.urandom(n) for n in set(data.sizes.values()) if n <= 64 * MiB}
    big = os.urandom(64 * MiB)

    def put(item):
        key, n = item
        body = blocks.get(n) or (big * (n // len(big) + 1))[:n]
        if n <= 64 * MiB:
            client.put_object(Bucket=bucket, Key=key, Body=body)
        else:
            import io
            client.upload_fileobj(io.BytesIO(body), bucket, key, Config=config)

    workers = 32 if len(data.sizes) > 100 else 4
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, data.sizes.items()))


def listing(client, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"])
    return found


@dataclass
class Run:
    seconds: float
    cpu: float
    rss_mib: float
    ok: bool
    why: str = ""
    s3_cpu: float = 0.0  # CPU seconds SeaweedFS spent during the run
    prefect_cpu: float = 0.0  # and the Prefect server


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and everything under it, from /proc."""
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        cpu[child] = sum(int(v) for v in fields[11:15]) / TICK
    tree, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                todo.append(child)
    return sum(cpu.get(p, 0.0) for p in tree)


@dataclass
class Tool:
    name: str
    command: callable  # (source_uri, destination_uri, workdir) -> argv
    env: dict = field(default_factory=dict)


def timed(argv: list[str], env: dict, log: Path) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, peak RSS (MiB) and exit code of a command's process tree.

    GNU time reports them (its small process forks the tool: wait4 from this Python
    process would count the forked copy of this interpreter as the tool's peak RSS)."""
    usage = log.parent / "usage.txt"
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        code = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(usage), *argv],
                              env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    rss_kib, user, system = usage.read_text().split()[-3:]
    return seconds, float(user) + float(system), int(rss_kib) / 1024, code


def tools(s3: SeaweedS3, prefect: PrefectServer, work: Path, only: list[str]) -> list[Tool]:
    base = {**os.environ, **s3.env()}
    aws_config = work / "aws-config"
    aws_config.write_text("[default]\nregion = us-east-1\ns3 =\n"
                          f"  max_concurrent_requests = {WORKERS}\n  max_queue_size = 10000\n")
    rclone = {f"RCLONE_CONFIG_BENCH_{k}": v for k, v in {
        "TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": s3.endpoint_url, "ACCESS_KEY_ID": s3.access_key,
        "SECRET_ACCESS_KEY": s3.secret_key, "REGION": "us-east-1"}.items()}
    rclone_env = {k: v for k, v in base.items() if k != "AWS_CA_BUNDLE"}  # rclone: http needs none

    def s3flow(src, dst, run_dir):
        manifest = run_dir / "manifest.csv"
        manifest.write_text(f"source,destination\n{src},{dst}\n")
        return [str(VENV_BIN / "s3flow"), "transfer", str(manifest), "--concurrency", str(WORKERS)]

    def bucket_path(uri: str) -> str:
        return uri.removeprefix("s3://").rstrip("/")

    every = [
        Tool("s3flow", s3flow, {**base, **prefect.env()}),
        # The same, told to copy whole objects (up to 5 GiB) with one CopyObject, as the other
        # tools do: cheaper on SeaweedFS, where part copies cost the server twice as much.
        Tool("s3flow whole-object", lambda src, dst, run_dir: [
            *s3flow(src, dst, run_dir), "--ignore-source-layout", "--multipart-threshold-mib", "5120"],
            {**base, **prefect.env()}),
        Tool("s3flow engine", lambda src, dst, run_dir: [
            str(VENV_BIN / "python"), str(ROOT / "bench" / "s3flow_engine.py"),
            str(s3flow(src, dst, run_dir)[2]), str(WORKERS)], base),
        Tool("s5cmd", lambda src, dst, _: [str(TOOLS_BIN / "s5cmd"), "--endpoint-url", s3.endpoint_url,
                                            "cp", f"{src}*", dst], base),
        Tool("rclone", lambda src, dst, _: [
            "rclone", "copy", f"bench:{bucket_path(src)}", f"bench:{bucket_path(dst)}",
            "--transfers", str(WORKERS), "--checkers", str(WORKERS), "--s3-no-check-bucket",
            "--s3-upload-cutoff", "5G", "--s3-copy-cutoff", "5G"], {**rclone_env, **rclone}),
        Tool("aws s3 sync", lambda src, dst, _: [
            str(TOOLS_BIN / "aws"), "s3", "sync", src, dst, "--endpoint-url", s3.endpoint_url,
            "--only-show-errors"], {**base, "AWS_CONFIG_FILE": str(aws_config)}),
        Tool("boto3 pool", lambda src, dst, _: [
            str(VENV_BIN / "python"), str(ROOT / "bench" / "boto3_pool.py"), src, dst, str(WORKERS)], base),
    ]
    return [tool for tool in every if tool.name.replace(" ", "-") in only or tool.name in only]


def bench(args) -> str:
    work = Path(tempfile.mkdtemp(prefix="s3flow-bench-"))
    log = work / "tools.log"
    rows, startup = [], []
    with SeaweedS3(work / "seaweed") as s3, PrefectServer(work / "prefect") as prefect:
        client = s3.client()
        client.create_bucket(Bucket="bench-src")
        all_tools = tools(s3, prefect, work, args.tools)
        subprocess.run([str(VENV_BIN / "s3flow"), "setup"], env={**os.environ, **prefect.env()},
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for data in data_sets(args):
            print(f"\n== {data.name}: {len(data.sizes):,} objects, {data.total / MiB:,.0f} MiB ==", flush=True)
            t = time.monotonic()
            upload(client, "bench-src", data)
            print(f"   generated in {time.monotonic() - t:.0f} s", flush=True)
            expected = listing(client, "bench-src", data.prefix)
            assert len(expected) == len(data.sizes), "the upload lost objects"
            results: dict[str, list[Run]] = {tool.name: [] for tool in all_tools}
            for rep in range(args.repeat):
                order = all_tools if rep % 2 == 0 else all_tools[::-1]  # even out warm-up effects
                for tool in order:
                    results[tool.name].append(one_run(client, tool, data, expected, work, log, rep,
                                                      servers=(s3.proc.pid, prefect.proc.pid)))
                    r = results[tool.name][-1]
                    print(f"   {tool.name:<12} run {rep + 1}: {r.seconds:7.2f} s  cpu {r.cpu:6.1f} s  "
                          f"rss {r.rss_mib:5.0f} MiB  {'ok' if r.ok else 'FAILED: ' + r.why}", flush=True)
            rows.append((data, results))
        if args.startup:
            startup = measure_startup(client, all_tools, work, log)
    table = render(rows, startup, args)
    print("\n" + table)
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return table


def one_run(client, tool: Tool, data: DataSet, expected: dict, work: Path, log: Path, rep: int,
            servers: tuple[int, int] | None = None) -> Run:
    dst = f"bench-dst-{tool.name.replace(' ', '-')}-{rep}-{data.name.lower()}"
    client.create_bucket(Bucket=dst)
    run_dir = work / dst
    run_dir.mkdir()
    argv = tool.command(f"s3://bench-src/{data.prefix}", f"s3://{dst}/{data.prefix}", run_dir)
    before = [tree_cpu(pid) for pid in servers] if servers else [0.0, 0.0]
    seconds, cpu, rss, code = timed(argv, tool.env, log)
    after = [tree_cpu(pid) for pid in servers] if servers else [0.0, 0.0]
    got = listing(client, dst, data.prefix)
    missing = [k for k in expected if k not in got]
    wrong = [k for k, (n, _) in expected.items() if k in got and got[k][0] != n]
    ok = code == 0 and not missing and not wrong and len(got) == len(expected)
    why = "" if ok else f"exit {code}, {len(missing)} missing, {len(wrong)} wrong size, {len(got)} found"
    empty_bucket(client, dst)
    return Run(seconds, cpu, rss, ok, why, after[0] - before[0], after[1] - before[1])


def empty_bucket(client, bucket: str) -> None:
    keys = list(listing(client, bucket, ""))
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                     "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def measure_startup(client, all_tools: list[Tool], work: Path, log: Path) -> list[tuple[str, float]]:
    """From the command to its exit, copying one 16 KiB object: the fixed cost of a run."""
    client.put_object(Bucket="bench-src", Key="one/object.bin", Body=os.urandom(16 << 10))
    data = DataSet("ONE", "one/", {"one/object.bin": 16 << 10})
    expected = listing(client, "bench-src", "one/")
    out = []
    for tool in all_tools:
        runs = [one_run(client, tool, data, expected, work, log, rep) for rep in range(3)]
        out.append((tool.name, statistics.median(r.seconds for r in runs)))
    return out


def render(rows, startup, args) -> str:
    cpu_count = os.cpu_count()
    lines = [f"Measured {date.today().isoformat()} on {platform.machine()}, {cpu_count} cores, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / (1 << 30):.0f} GiB, "
             f"SeaweedFS on loopback (same machine); median of {args.repeat} runs; "
             f"speed = objects/s relative to s5cmd (higher is faster); 'after start-up' takes "
             f"each tool's one-object run (below) off its median. The S3 server, the Prefect "
             f"server and the tool share the same cores: server CPU is what each run cost them.", ""]
    fixed = dict(startup)
    for data, results in rows:
        lines += [f"**{data.name}**: {len(data.sizes):,} objects, {data.total / MiB:,.0f} MiB", "",
                  "| tool | median s | objects/s | MiB/s | speed vs s5cmd | after start-up s | "
                  "speed vs s5cmd after start-up | client CPU s | S3 server CPU s "
                  "| Prefect server CPU s | peak RSS MiB | verified |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        medians = {name: statistics.median(r.seconds for r in runs) for name, runs in results.items()}
        reference = medians.get("s5cmd")
        # The same run less the tool's fixed cost (its one-object run): the copying itself.
        after = {name: max(m - fixed[name], 0.01) for name, m in medians.items() if name in fixed}
        for name, runs in results.items():
            m = medians[name]
            ratio = f"{reference / m:.2f}" if reference else "-"
            steady = (f"{after[name]:.2f} | {after['s5cmd'] / after[name]:.2f}"
                      if name in after and "s5cmd" in after else "- | -")
            ok = all(r.ok for r in runs)
            lines.append(f"| {name} | {m:.2f} | {len(data.sizes) / m:,.0f} | {data.total / MiB / m:,.0f} | "
                         f"{ratio} | {steady} | {statistics.median(r.cpu for r in runs):.1f} | "
                         f"{statistics.median(r.s3_cpu for r in runs):.1f} | "
                         f"{statistics.median(r.prefect_cpu for r in runs):.1f} | "
                         f"{max(r.rss_mib for r in runs):,.0f} | "
                         f"{'all ' + str(len(runs)) + ' runs' if ok else 'NO: ' + next(r.why for r in runs if not r.ok)} |")
        lines.append("")
    if startup:
        lines += ["**Start-up**: one 16 KiB object, command to exit (median of 3)", "",
                  "| tool | seconds |", "|---|---:|", *(f"| {n} | {s:.2f} |" for n, s in startup), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="small,large,mixed")
    parser.add_argument("--tools", default="s3flow,s3flow-engine,s5cmd,rclone,aws-s3-sync,boto3-pool")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small-count", type=int, default=10_000)
    parser.add_argument("--small-size", type=size, default=16 << 10)
    parser.add_argument("--large-count", type=int, default=8)
    parser.add_argument("--large-size", type=size, default=256 * MiB)
    parser.add_argument("--mixed-samples", type=int, default=16, help="15 files each")
    parser.add_argument("--mixed-max", type=size, default=512 * MiB, help="the largest CRAM")
    parser.add_argument("--no-startup", dest="startup", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"{date.today().isoformat()}.md")
    args = parser.parse_args()
    args.sets = args.sets.split(",")
    args.tools = args.tools.split(",")
    table = bench(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
