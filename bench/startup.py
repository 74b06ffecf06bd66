"""Start-up of `s3flow transfer`: one 16 KiB object, from the command to its first copy
request reaching S3, and to its exit; with a Prefect server configured
(PREFECT_API_URL) and without one (Prefect then starts a temporary server itself);
each with the head start (copies begin while Prefect loads: s3flow.transfer.HeadStart)
and without it (S3FLOW_HEAD_START_SLOTS=0: the copies wait for the flow run, as before).

    bench/startup.py [--repeat 5]

A recording proxy between s3flow and a local SeaweedFS timestamps the first CopyObject.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3flow.local import PrefectServer, SeaweedS3  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

VENV_BIN = Path(sys.executable).parent


def one(env: dict, manifest: Path, proxy: FaultProxy) -> tuple[float, float]:
    proxy.seen.clear()
    started = time.monotonic()
    done = subprocess.run(
        [str(VENV_BIN / "s3flow"), "transfer", str(manifest)], env=env, capture_output=True, text=True, timeout=300
    )
    ended = time.monotonic()
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    first = next((s.at for s in proxy.seen if s.copy_source), None)
    return (first - started if first else float("nan")), ended - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3flow-startup-"))
    with SeaweedS3(work / "seaweed") as s3, PrefectServer(work / "prefect") as prefect:
        proxy = FaultProxy(s3.port).start()
        client = s3.client()
        rows: dict[tuple[str, str], list] = {
            (api, start): [] for api in ("configured", "temporary server") for start in ("head start", "none")
        }
        for n in range(args.repeat):  # interleaved, so a noisy minute hits every mode alike
            for mode in rows:
                api, start = mode
                env = {**os.environ, **s3.env(), "AWS_ENDPOINT_URL": proxy.url, "PREFECT_HOME": str(work / "client")}
                if api == "configured":
                    env["PREFECT_API_URL"] = prefect.api_url
                else:
                    env.pop("PREFECT_API_URL", None)
                env["S3FLOW_HEAD_START_SLOTS"] = "8" if start == "head start" else "0"
                tag = f"{api[:4]}-{start[:4]}-{n}".replace(" ", "")
                src, dst = f"src-{tag}", f"dst-{tag}"
                client.create_bucket(Bucket=src)
                client.create_bucket(Bucket=dst)
                client.put_object(Bucket=src, Key="one.fq", Body=os.urandom(16 << 10))
                manifest = work / f"m-{tag}.csv"
                manifest.write_text(f"s3://{src}/one.fq,s3://{dst}/one.fq\n")
                rows[mode].append(one(env, manifest, proxy))
        proxy.stop()
    print("| Prefect API | copies begin | to the first copy, s | to exit, s |\n|---|---|---:|---:|")
    for (api, start), runs in rows.items():
        first = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        print(f"| {api} | {'at once (head start)' if start == 'head start' else 'in the flow run'} | "
              f"{first:.2f} | {total:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
