"""Airflow's own UI on the local stack (``make airflow``'s code, ``infra.airflow_local.up``), in a
real headless browser: log in with the generated password, trigger ``bigtech_ingest`` from its
trigger form with a small generated dataset, wait for the DAG run to succeed, open the sensor task's
log and find the platform run's counts there, equal to the gateway's report of that run. The test
runs an Airflow of its own (its own home folder, free ports, the tests' topic prefix and keys), never
the user's; the screenshot is kept in ``$LAKE_TEST_ARTIFACTS`` (default ``artifacts/``)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from infra import airflow_local
from lake.cli import create_key
from lake.settings import Settings
from tests.e2e.conftest import Services
from tests.e2e.test_dashboard import ARTIFACTS, chromium

pytestmark = pytest.mark.e2e

PREFIX = "e2e-airflow"  # its processes in the stack's PID files: never the user's ``airflow-*``
ROWS, SEED = 2400, 7311
COUNTS = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Airflow:
    url: str
    user: str
    password: str

    def token(self) -> str:
        answer = httpx.post(
            f"{self.url}/auth/token", json={"username": self.user, "password": self.password}, timeout=30
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def get(self, path: str) -> Any:
        answer = httpx.get(
            f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self.token()}"}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()


@pytest.fixture(scope="module")
def airflow(
    settings: Settings, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-ui-home")
    port = free_port()
    extra = {
        "LAKE_AIRFLOW_SCHEDULE": "none",  # only the run this test triggers
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    try:
        airflow_local.up(settings, home, port, prefix=PREFIX, **extra)
        yield Airflow(f"http://127.0.0.1:{port}", airflow_local.USER, airflow_local.password(home))
    finally:
        airflow_local.down(PREFIX)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


def test_a_dag_run_triggered_in_airflows_ui_shows_the_platform_runs_counts_in_its_log(
    airflow: Airflow, services: Services, settings: Settings
):
    from playwright.sync_api import sync_playwright

    wait_for(lambda: airflow.get("/dags?dag_id_pattern=bigtech_ingest")["dags"], 180, "the DAG parsed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        # log in with the password `make airflow` generated
        page.goto(f"{airflow.url}/", wait_until="networkidle")
        page.fill("input[name=username]", airflow.user)
        page.fill("input[name=password]", airflow.password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{airflow.url}/")
        # trigger the DAG from its form: a small generated dataset
        page.goto(f"{airflow.url}/dags/bigtech_ingest", wait_until="networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("combobox").last.click()
        page.keyboard.type("generated")
        page.keyboard.press("Enter")
        assert dialog.locator("input[name=element_source]").get_attribute("value") == "generated"
        for name, value in (("rows", ROWS), ("seed", SEED)):
            field_id = dialog.locator(f'[id="number-input:element_{name}:inc"]').get_attribute(
                "aria-controls"
            )
            dialog.locator(f"#{field_id}").fill(str(value))
        dialog.get_by_test_id("trigger-dag-submit").click()
        page.wait_for_url(re.compile(r"/dags/bigtech_ingest/runs/[^/]+$"))
        dag_run = unquote(page.url.rsplit("/", 1)[1])

        def finished() -> str | None:
            state = str(airflow.get(f"/dags/bigtech_ingest/dagRuns/{quote(dag_run)}")["state"])
            return state if state in ("success", "failed") else None

        assert wait_for(finished, 300, f"DAG run {dag_run} finished") == "success"
        # the sensor's log, in the UI
        page.goto(
            f"{airflow.url}/dags/bigtech_ingest/runs/{quote(dag_run)}/tasks/wait_for_run",
            wait_until="networkidle",
        )
        line = page.get_by_text(re.compile(r"run \S+ succeeded: raw_rows")).first
        line.wait_for()
        text = line.inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(ARTIFACTS) / "airflow-task-log.png"), full_page=True)
        browser.close()

    found = re.search(r"run (\S+) succeeded: (.*); rejected share ([\d.]+)%", text)
    assert found, text
    run_id, counts_text, share = found.groups()
    shown = {name: int(value.replace(",", "")) for name, value in re.findall(r"(\w+) ([\d,]+)", counts_text)}
    key = create_key(settings, "e2e airflow ui", "analyst")
    auth = {"Authorization": f"Bearer {key}"}
    answer = httpx.get(f"{services.gateway}/runs/{run_id}", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["status"] == "succeeded" and report["source"] == {
        "source": "generated",
        "rows": ROWS,
        "seed": SEED,
        "malformed_share": report["source"]["malformed_share"],
    }
    assert shown == {name: report[name] for name in COUNTS}
    assert (
        shown["raw_rows"] == ROWS == sum(shown[n] for n in ("rejected_rows", "duplicate_rows", "staged_rows"))
    )
    assert f"{share}%" == f"{report['rejected_rows'] / ROWS:.2%}"
