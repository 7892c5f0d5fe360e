"""A run exists from the moment it is accepted: ``GET /runs/{id}`` right after ``POST /runs``
answers 200 with status ``requested`` (here with the ingestor stopped, so nothing takes it), the
run is listed, and it runs to the end once an ingestor consumes again."""

from __future__ import annotations

import httpx
import pytest

from lake.cli import wait_for_run
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e
ROWS = 300


def test_a_requested_run_answers_at_once_and_runs_when_an_ingestor_takes_it(
    services: Services, settings: Settings, admin_key: str
):
    services.stop("ingestor")
    try:
        with httpx.Client(
            base_url=services.gateway, timeout=30, headers={"Authorization": f"Bearer {admin_key}"}
        ) as http:
            accepted = http.post("/runs", json={"source": "generated", "rows": ROWS, "seed": 31337})
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["run_id"]
            report = http.get(f"/runs/{run_id}")
            assert report.status_code == 200, report.text
            body = report.json()
            assert (body["status"], body["requested_by"], body["raw_rows"]) == ("requested", "gateway", 0)
            assert {layer["status"] for layer in body["layers"].values()} == {"pending"}
            listed = http.get("/runs", params={"limit": 100}).json()["items"]
            assert [r["status"] for r in listed if r["run_id"] == run_id] == ["requested"]
            assert http.get("/runs/20991231T000000Z-00000000").status_code == 404  # no such run
    finally:
        services.start("ingestor", "services.ingestor", LAKE_CHUNK_ROWS="1500")
    summary = wait_for_run(settings, run_id, timeout=180, expected_rows=ROWS)
    assert summary["status"] == "succeeded" and summary["raw_rows"] == ROWS, summary
