"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright): the page loads
without credentials, takes a viewer key, shows the run this test ingested with its counts, the pipeline
and both charts, with no console error and no request leaving the gateway. The screenshot is kept in
``$LAKE_TEST_ARTIFACTS`` (default ``artifacts/``)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.e2e.conftest import ROOT, Services

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(os.environ.get("LAKE_TEST_ARTIFACTS", ROOT / "artifacts"))


def chromium() -> str:
    path = os.environ.get("LAKE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("no chromium: `make test` installs Debian's package (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def ingested(services: Services, settings: Settings) -> dict[str, Any]:
    run_id = request_run(settings, GeneratedSource(rows=3000, seed=808), "e2e-dashboard")
    summary = wait_for_run(settings, run_id, timeout=180, expected_rows=3000)
    assert summary["status"] == "succeeded", summary
    return summary


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def test_the_dashboard_shows_the_ingested_run_without_a_console_error(
    browser: Any, services: Services, settings: Settings, ingested: dict[str, Any]
):
    key = create_key(settings, "e2e dashboard", "viewer")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    foreign: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    gateway = urlparse(services.gateway).netloc
    page.on(
        "request", lambda r: foreign.append(r.url) if urlparse(r.url).netloc not in (gateway, "") else None
    )

    page.goto(f"{services.gateway}/dashboard?refresh=2")
    page.get_by_test_id("sign-in").wait_for()  # the page itself needs no key
    page.fill("#key", key)
    page.click("button[type=submit]")

    row = page.locator(f'tr[data-run-id="{ingested["run_id"]}"]')
    row.wait_for(timeout=30_000)
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "succeeded"
    counts = [int(c.replace(",", "")) for c in cells[4:9]]
    run = ingested
    assert counts == [
        run[k] for k in ("raw_rows", "staged_rows", "rejected_rows", "duplicate_rows", "curated_docs")
    ]
    assert page.get_by_test_id("lag-stager").is_visible() and page.get_by_test_id("dead-letters").is_visible()
    page.locator("#chart-companies polyline").first.wait_for()
    assert page.locator("#chart-sentiment polygon").count() >= 2
    status = page.get_by_test_id("status")
    first = status.inner_text()
    assert first.startswith("Updated") and "refreshes every 2 s" in first
    page.wait_for_function(  # it refreshes itself
        "text => document.querySelector('[data-testid=status]').innerText !== text", arg=first, timeout=15_000
    )
    assert page.evaluate("sessionStorage.getItem('bigtech-lake.api-key')") == key

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert problems == []
    assert foreign == []  # every script, style and data call stays on the gateway
    page.close()


def test_a_refused_key_returns_to_the_sign_in_with_a_message(browser: Any, services: Services):
    page = browser.new_page()
    page.goto(f"{services.gateway}/dashboard")
    page.fill("#key", "lk_nope_nope")
    page.click("button[type=submit]")
    error = page.locator("#sign-in-error")
    error.wait_for()
    assert "refused this key" in error.inner_text()
    assert page.evaluate("sessionStorage.getItem('bigtech-lake.api-key')") is None
    page.close()


def test_dead_letters_show_by_role_and_an_admin_redrives_them_from_the_page(
    browser: Any, services: Services, settings: Settings
):
    from lake.adapters.dead_letters import DeadLetterStore
    from lake.adapters.staging_repo import StagingRepository
    from lake.events import PathSource

    inbox = ROOT / ".lake" / "test-inbox" / f"dashboard-{uuid.uuid4().hex[:8]}"
    inbox.mkdir(parents=True)  # empty: the ingestor refuses it, its event is dead-lettered
    try:
        run_id = request_run(settings, PathSource(path=str(inbox)), "e2e-dashboard-dlq")
        assert wait_for_run(settings, run_id, timeout=60)["status"] == "failed"
        problems: list[str] = []

        def sign_in(role: str) -> Any:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            page.goto(f"{services.gateway}/dashboard?refresh=2")
            page.fill("#key", create_key(settings, f"e2e dashboard {role}", role))
            page.click("button[type=submit]")
            return page

        viewer = sign_in("viewer")
        row = viewer.locator("#dead-letters tr").filter(has_text=run_id)
        row.wait_for(timeout=30_000)
        cells = row.first.locator("td").all_inner_texts()
        assert (
            cells[1:3] == ["ingest.requested", "ingestor"] and cells[6] == "PermanentError"
        )  # the kind only
        assert viewer.get_by_test_id("redrive").count() == 0  # viewers cannot redrive
        viewer.close()

        admin = sign_in("admin")
        row = admin.locator("#dead-letters tr").filter(has_text=run_id)
        row.wait_for(timeout=30_000)
        assert "no .csv file" in row.first.locator("td").nth(6).inner_text()  # the message, for an admin
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        admin.once("dialog", accept)
        row.first.get_by_test_id("redrive").click()
        result = admin.get_by_test_id("redrive-result")
        result.wait_for(state="visible", timeout=30_000)
        assert f"Redriven 1 dead letter(s) of {run_id}" in result.inner_text()
        assert dialogs and f"run {run_id}" in dialogs[0]  # asked for a confirmation first
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        admin.screenshot(path=str(ARTIFACTS / "dashboard-dead-letters.png"), full_page=True)
        admin.close()
        repo = StagingRepository(settings.mysql)
        try:  # the inbox is still empty: redriven once, failed again as a new dead letter
            letters = DeadLetterStore(repo).list(run_id=run_id)
        finally:
            repo.close()
        assert [x.redriven_at is not None for x in letters][-1] is True
        assert problems == []
    finally:
        shutil.rmtree(inbox, ignore_errors=True)
