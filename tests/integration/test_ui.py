"""A transfer's artifacts as the Prefect UI renders them, in a real headless Chromium.

The UI is Prefect's own Vue app served by the test session's server; these tests drive
Debian's Chromium through Playwright (no browser download) and save a screenshot of each
page under SCREENSHOTS, so a person can look at what the assertions saw.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from s3flow.flows.transfer import artifact_base, transfer_manifest
from tests.integration.test_transfer_flow import artifacts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags the machine needs: no sandbox as root, no GPU, and no calls out to Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".screenshots"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser):
    """A page whose context fails the test on any uncaught error in any of its tabs."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield context.new_page()
    context.close()
    assert not errors, f"the UI raised: {errors}"


def show(page, name: str, ready: str) -> str:
    """Wait until `ready` text is on screen, save a screenshot; the page's text."""
    ready = page.get_by_text(ready).first
    ready.wait_for(state="visible", timeout=30_000)
    ready.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    text = page.inner_text("body")
    assert "Something went wrong" not in text and "Can't connect to Server API" not in text, text[:500]
    return text


def test_summary_and_per_file_table_render_in_the_ui(seaweed, buckets, prefect_server, prefect_api,
                                                     s3_env, write_manifest, page):
    src, dst = buckets("src", "dst")
    c = seaweed.client()
    for i in range(30):
        c.put_object(Bucket=src, Key=f"run-9/sample-{i:02d}.cram", Body=b"x" * (1000 + i))
    manifest = write_manifest(
        f"s3://{src}/run-9/,s3://{dst}/run-9/\ns3://{src}/missing.cram,s3://{dst}/missing.cram\n",
        "ui-batch.csv")
    state = transfer_manifest(manifest=manifest, batch_files=10, return_state=True)
    assert state.is_failed()
    run_id = str(state.state_details.flow_run_id)
    base = artifact_base(manifest)
    summary, files = artifacts(f"{base}-summary")[0], artifacts(f"{base}-files")[0]
    ui = prefect_server.ui_url

    # The summary: counts as a table, the failure with its error, links to the table and run.
    page.goto(f"{ui}/artifacts/artifact/{summary.id}", wait_until="networkidle")
    text = show(page, "summary", f"Transfer {manifest}")
    for label, value in (("Files", "31"), ("Copied", "30"), ("Failed", "1")):
        assert re.search(rf"^{label}\s+{value}$", text, re.M), f"{label} {value} not shown:\n{text[:800]}"
    assert f"s3://{src}/missing.cram" in text and "NoSuchKey" in text
    # Links are relative to the UI's root, so they stay valid on whichever server (port) the
    # user browses the same database with; the browser resolves them against this one.
    table_link = page.get_by_role("link", name=f"{base}-files")
    assert table_link.get_attribute("href") == f"/artifacts/artifact/{files.id}"
    assert page.get_by_role("link", name=run_id).first.get_attribute("href") == f"/runs/flow-run/{run_id}"

    # Following the summary's link (the UI opens it in a new tab) shows the per-file
    # table: every file, with its status in view.
    with page.context.expect_page() as opened:
        table_link.click()
    page = opened.value
    page.wait_for_load_state("networkidle")
    assert page.url == f"{ui}/artifacts/artifact/{files.id}"
    text = show(page, "files", "31 Items")
    headers = page.locator("table th").all_inner_texts()
    assert headers[:3] == ["status", "source", "destination"], headers
    status_header = page.locator("table th").first.bounding_box()
    assert status_header and status_header["x"] + status_header["width"] <= 1400, "status is off screen"
    failed_row = page.locator("tr", has_text=f"s3://{src}/missing.cram")
    assert failed_row.locator("td").first.inner_text().strip() == "failed"
    assert "NoSuchKey" in failed_row.inner_text()
    page.get_by_placeholder("Search").fill("sample-07")
    expect(page.locator("tbody tr")).to_have_count(1)
    assert page.locator("tbody tr td").first.inner_text().strip() == "copied"

    # The flow run's page lists both artifacts, as `s3flow status` and notifications link to it.
    page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")
    page.get_by_text("Artifacts", exact=True).first.click()
    text = show(page, "run-artifacts", f"{base}-summary")
    assert f"{base}-files" in text and "Failed" in text
