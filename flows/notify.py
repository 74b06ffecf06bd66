"""Failure notifications through a saved SnsNotification block, shared by our flows."""

from __future__ import annotations

import os

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL
from prefect.utilities.urls import url_for

FAILURE_MARK = "[FAILED]"  # SNS subjects are ASCII only


@task(name="send-notification", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def send_notification(block_name: str, subject: str, body: str) -> str:
    """Publish through the named SnsNotification block; its MessageId."""
    from s3flow.blocks.sns import SnsNotification

    return SnsNotification.load(block_name).publish(body, subject)


def notify_failure(block_name: str | None, subject: str, body: str) -> str:
    """Send a failure notification if a block is named; "" when sent (or none asked for),
    else why it was not sent, for the run's final message. Never raises: a notification
    that fails must not hide the failures it was about."""
    if not block_name:
        return ""
    logger = get_run_logger()
    state = send_notification(block_name, f"{FAILURE_MARK} {subject}", body, return_state=True)
    if state.is_completed():
        logger.info("failure notification sent through %r (SNS message %s)", block_name, state.result())
        return ""
    error = state.result(raise_on_failure=False)
    why = f"the failure notification through {block_name!r} was not sent (3 tries): {error}"
    logger.error(why)
    return why


def run_link() -> str:
    """The UI page of the current flow run: PREFECT_UI_URL's, else the API server's own UI."""
    return ui_link(flow_run.id)


def ui_link(run_id) -> str:
    """The UI page of a flow run: PREFECT_UI_URL's, else the API server's own UI."""
    link = url_for("flow-run", obj_id=run_id) if run_id else None
    if link:
        return link
    base = ui_base()
    return f"{base}/runs/flow-run/{run_id}" if base and run_id else str(run_id or "")


def run_path(run_id=None) -> str:
    """The UI path of a flow run (this one by default), relative to the UI's root: links in
    artifacts stay valid on whichever server the user browses (`make ui`, another port)."""
    return f"/runs/flow-run/{run_id or flow_run.id}"


def artifact_path(artifact_id) -> str:
    """The UI path of an artifact, relative to the UI's root (see run_path)."""
    return f"/artifacts/artifact/{artifact_id}"


def artifact_link(artifact_id) -> str:
    """The UI page of an artifact (Prefect's url_for has no artifact pages), or ""."""
    base = ui_base()
    return f"{base}/artifacts/artifact/{artifact_id}" if base and artifact_id else ""


def ui_base() -> str:
    """The UI's root URL: PREFECT_UI_URL, else the API server's own UI, else ""."""
    if PREFECT_UI_URL.value():
        return PREFECT_UI_URL.value().rstrip("/")
    api = (PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL", "")).rstrip("/")
    return api[:-4] if api.endswith("/api") else ""
