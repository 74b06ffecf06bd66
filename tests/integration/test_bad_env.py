"""A bad environment is bad input: each case, run as a real process, is one line naming the
problem on stderr, exit 2, no traceback, and nothing copied."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import VENV_BIN, free_port, listing, run_cli
from tests.faultproxy import FaultProxy, Faults


def one_line(done: subprocess.CompletedProcess, *needles: str) -> None:
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stdout[-1000:], err[-3000:])
    assert "Traceback" not in err and "\n" not in err, err[-3000:]
    for needle in needles:
        assert needle in err, err


@pytest.fixture()
def job(seaweed, buckets, write_manifest):
    src, dst = buckets("src", "dst")
    seaweed.client().put_object(Bucket=src, Key="runs/a.fq", Body=b"ACGT")
    return src, dst, write_manifest(f"s3://{src}/runs/,s3://{dst}/runs/\n", "job.csv")


@pytest.mark.parametrize("command", ["plan", "verify", "transfer"])
def test_a_missing_profile(command, seaweed, prefect_server, job):
    env = {**seaweed.env(), **prefect_server.env(), "AWS_PROFILE": "nosuch"}  # access keys set too
    one_line(run_cli([command, job[2]], env), "'nosuch'", "AWS_PROFILE")
    assert listing(seaweed.client(), job[1]) == {}


@pytest.mark.parametrize("url, needle", [
    ("localhost:9000", "needs a scheme and a host"),
    ("http://no-such-host.invalid:9000", "does not resolve"),
])
def test_an_endpoint_without_scheme_or_that_does_not_resolve(url, needle, seaweed, job):
    one_line(run_cli(["plan", job[2]], {**seaweed.env(), "AWS_ENDPOINT_URL": url}), needle, url.split(":")[0])


@pytest.mark.parametrize("code, needle", [("ExpiredToken", "has expired"), ("InvalidToken", "not valid")])
def test_an_expired_or_invalid_session_token(code, needle, seaweed, job):
    proxy = FaultProxy(seaweed.port, Faults(token_refused=code)).start()
    try:
        env = {**seaweed.env(), "AWS_ENDPOINT_URL": proxy.url, "AWS_SESSION_TOKEN": "an-old-token"}
        one_line(run_cli(["plan", job[2]], env), code, needle)
    finally:
        proxy.stop()


def test_a_manifest_object_the_credentials_may_not_read(seaweed, prefect_server, buckets, job):
    [manifests] = buckets("manifests")
    seaweed.client().put_object(Bucket=manifests, Key="secret/m.csv", Body=b"s3://a/b,s3://c/d\n")
    proxy = FaultProxy(seaweed.port, Faults(denied=("secret/",))).start()
    try:
        env = {**seaweed.env(), **prefect_server.env(), "AWS_ENDPOINT_URL": proxy.url}
        one_line(run_cli(["transfer", f"s3://{manifests}/secret/m.csv"], env),
                 "cannot read the manifest", "AccessDenied")
    finally:
        proxy.stop()


@pytest.mark.parametrize("args", [["transfer", "JOB"], ["status", "3eef7655-8788-4ca3-8ffd-cd19107380f8"],
                                  ["history", "s3://bucket/key"], ["setup"],
                                  ["bridge", "http", "--port", "0"]])
def test_an_unreachable_prefect_api(args, seaweed, job):
    url = f"http://127.0.0.1:{free_port()}/api"
    args = [job[2] if arg == "JOB" else arg for arg in args]
    one_line(run_cli(args, {**seaweed.env(), "PREFECT_API_URL": url}, timeout=60), url, "PREFECT_API_URL")


def test_output_piped_into_head_ends_quietly_with_the_commands_exit_code(seaweed, buckets, write_manifest):
    src, dst = buckets("src", "dst")
    for n in range(30):
        seaweed.client().put_object(Bucket=src, Key=f"runs/{n:02d}.fq", Body=b"x" * 1000)
    manifest = write_manifest(f"s3://{src}/runs/,s3://{dst}/runs/\n", "many.csv")
    env = {**seaweed.env(), "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", f"s3flow verify {manifest} | head -2; echo \"exit ${{PIPESTATUS[0]}}\""],
                          env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "exit 1"  # 30 differences: verify's own exit code
    assert len(done.stdout.splitlines()) == 3 and "Traceback" not in done.stderr and not done.stderr.strip()


def test_a_mistyped_first_row_is_an_error_not_a_header(seaweed, job, write_manifest):
    src, dst, _ = job
    manifest = write_manifest(f"s3:/{src}/runs/a.fq,s3://{dst}/x/\ns3://{src}/runs/a.fq,s3://{dst}/y/a.fq\n",
                              "typo.csv")
    for command in ("plan", "verify"):
        one_line(run_cli([command, manifest], seaweed.env()), "line 1", f"'s3:/{src}/runs/a.fq'")


def test_a_source_without_its_slash_gets_a_hint(seaweed, job, write_manifest):
    src, dst, _ = job
    manifest = write_manifest(f"s3://{src}/runs,s3://{dst}/runs\n", "noslash.csv")
    done = run_cli(["verify", manifest, "--json"], seaweed.env())
    assert done.returncode == 1
    [difference] = json.loads(done.stdout)["differences"]
    assert difference["why"].startswith("NoSuchKey") and f"objects exist below s3://{src}/runs/" in difference["why"]


def test_bridge_sqs_stops_on_a_queue_that_does_not_exist(moto, prefect_server):
    """A permanent SQS refusal (a deleted queue) stops the bridge with one line, exit 2;
    retrying it for ever would hide the problem."""
    import boto3

    from tests.conftest import MOTO_CREDENTIALS

    url, _ = moto
    sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    queue = sqs.create_queue(QueueName="s3-events-gone")["QueueUrl"]
    sqs.delete_queue(QueueUrl=queue)
    env = {"AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1", **MOTO_CREDENTIALS, **prefect_server.env()}
    done = run_cli(["bridge", "sqs", "--queue-url", queue, "--wait-seconds", "1"], env, timeout=120)
    assert done.returncode == 2, (done.stdout[-1000:], done.stderr[-2000:])
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("s3flow: bridge: the queue"), last
    assert "NonExistentQueue" in last or "QueueDoesNotExist" in last, last
    assert "Traceback" not in done.stderr
