"""A dead-lettered event is listed, redriven before its cause is fixed (it fails again, its attempts
counted), then redriven after the fix — once, though the request is sent twice — and its run ends
``succeeded`` with exact counts in every layer (docs/api.md, "Recovery")."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lake.cli import create_key, main, wait_for_run
from lake.events import PathSource
from lake.runs import request_run
from lake.settings import Settings
from lake.transform.generate import write_csv
from tests.e2e.conftest import ROOT, Services
from tests.e2e.test_crash_recovery import assert_every_layer_holds_exactly

pytestmark = pytest.mark.e2e
ROWS = 3000


@pytest.fixture
def inbox() -> Iterator[Any]:
    """An empty folder under the test settings' allowed root (LAKE_ALLOWED_ROOTS)."""
    folder = ROOT / ".lake" / "test-inbox" / f"redrive-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def letters_of(http: httpx.Client, run_id: str, n: int) -> list[dict[str, Any]]:
    """The run's dead letters once there are ``n`` (newest first)."""
    deadline = time.monotonic() + 60
    while True:
        answer = http.get("/dead-letters", params={"run_id": run_id})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        if len(items) >= n or time.monotonic() > deadline:
            assert len(items) == n, items
            return items
        time.sleep(0.3)


def test_a_dead_letter_is_redriven_once_its_cause_is_fixed_and_the_run_ends_exact(
    services: Services, settings: Settings, inbox: Any
):
    run_id = request_run(settings, PathSource(path=str(inbox)), "e2e-redrive")
    failed = wait_for_run(settings, run_id, timeout=60)
    assert failed["status"] == "failed" and "no .csv file" in failed["error"], failed
    analyst = create_key(settings, "e2e redrive analyst", "analyst")
    admin = create_key(settings, "e2e redrive admin", "admin")
    with (
        httpx.Client(
            base_url=services.gateway, timeout=60, headers={"Authorization": f"Bearer {analyst}"}
        ) as http,
        httpx.Client(
            base_url=services.gateway, timeout=60, headers={"Authorization": f"Bearer {admin}"}
        ) as ops,
    ):
        [first] = letters_of(http, run_id, 1)
        assert (first["topic"], first["service"], first["attempts"]) == ("ingest.requested", "ingestor", 1)
        assert first["redriven"] is False and first["redrive_of"] is None and "no .csv file" in first["error"]
        original = base64.b64decode(first["event_base64"])  # the message, byte for byte
        assert json.loads(original) == first["event"] and first["event"]["run_id"] == run_id
        assert http.post("/dead-letters/redrive", json={"run_id": run_id}).status_code == 403  # admin only
        assert ops.post("/dead-letters/redrive", json={"run_id": run_id, "all": True}).status_code == 422

        # redriven before the cause is fixed: the run reopens, fails again, attempts add up
        again = ops.post("/dead-letters/redrive", json={"run_id": run_id})
        assert again.status_code == 200, again.text
        assert (again.json()["letters"], again.json()["runs_reopened"]) == ([first["letter_id"]], [run_id])
        second, first_now = letters_of(http, run_id, 2)
        assert (second["redrive_of"], second["attempts"], second["redriven"]) == (
            first["letter_id"],
            2,
            False,
        )
        assert base64.b64decode(second["event_base64"]) == original
        assert second["first_failed_at"] == first["first_failed_at"]
        assert first_now["redriven"] is True
        assert wait_for_run(settings, run_id, timeout=60)["status"] == "failed"

        # the cause removed; the redrive request sent twice redrives once
        with (inbox / "tweets.csv").open("wb") as out:
            write_csv(out, ROWS, seed=7117)
        answers = [ops.post("/dead-letters/redrive", json={"run_id": run_id}) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.json()["redriven"] for a in answers] == [1, 0]
        summary = wait_for_run(settings, run_id, timeout=240, expected_rows=ROWS)
        assert summary["status"] == "succeeded", summary
        assert_every_layer_holds_exactly(settings, summary, ROWS)

        report = http.get(f"/runs/{run_id}").json()
        assert report["status"] == "succeeded" and report["error"] is None
        assert [h["event"] for h in report["history"]] == ["failed", "redriven", "failed", "redriven"]
        assert "no .csv file" in report["history"][0]["detail"]
        assert (report["dead_letters"], report["dead_letters_waiting"]) == (2, 0)
        assert all(x["redriven"] for x in letters_of(http, run_id, 2))

    listed = io.StringIO()  # the CLI shows the same letters
    with contextlib.redirect_stdout(listed):
        assert main(["dlq", "list", "--run", run_id]) == 0
    assert first["letter_id"] in listed.getvalue() and second["letter_id"] in listed.getvalue()
    with contextlib.redirect_stdout(io.StringIO()) as nothing:
        assert main(["dlq", "redrive", "--run", run_id]) == 0
    assert json.loads(nothing.getvalue())["redriven"] == 0
