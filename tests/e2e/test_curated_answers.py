"""The curated API's answers keep exactly their shape and values when the stored document changes
(issue 13: slimmer documents, fields derived by the gateway). ``tests/fixtures/curated_answers.json``
holds the answers of ``GET /curated/{id}?include_tokens=true`` for the first tweets of a generated
run, recorded with the documents as stored up to commit 30dffdc (every field stored); this test
ingests the same data and compares every field of every answer, run ids aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from lake.adapters.mysql import connect
from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "curated_answers.json"
ROWS, SEED, ANSWERS = 1500, 2718, 40


def normalised(answer: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The answer with its run's id (in lineage and raw keys) replaced by ``<run>``."""
    return dict(json.loads(json.dumps(answer).replace(run_id, "<run>")))


def answers(http: httpx.Client, settings: Settings, run_id: str) -> dict[str, Any]:
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT twitter_id FROM tweets WHERE run_id = %s ORDER BY twitter_id LIMIT %s", (run_id, ANSWERS)
        )
        ids = [str(r[0]) for r in cur.fetchall()]
    out: dict[str, Any] = {}
    for tid in ids:
        got = http.get(f"/curated/{tid}", params={"include_tokens": "true"})
        assert got.status_code == 200, got.text
        out[tid] = normalised(got.json(), run_id)
    return out


@pytest.fixture(scope="module")
def run_id(services: Services, settings: Settings) -> str:
    run = request_run(settings, GeneratedSource(rows=ROWS, seed=SEED, malformed_share=0.0), "e2e-answers")
    assert wait_for_run(settings, run, timeout=180, expected_rows=ROWS)["status"] == "succeeded"
    return run


def test_curated_answers_equal_those_recorded_before_the_documents_were_slimmed(services, settings, run_id):
    key = create_key(settings, "e2e answers", "viewer")
    with httpx.Client(
        base_url=services.gateway, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        now = answers(http, settings, run_id)
    recorded = json.loads(FIXTURE.read_text())
    assert list(now) == list(recorded)
    for tid, answer in recorded.items():
        assert now[tid] == answer, tid
    # the list pages show the same documents
    with httpx.Client(
        base_url=services.gateway, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        for tid, answer in list(recorded.items())[:5]:
            day = answer["document"]["date"]
            params = {"start_date": day, "end_date": day, "limit": 1000, "include_tokens": "true"}
            items = {i["twitter_id"]: i for i in http.get("/curated", params=params).json()["items"]}
            assert normalised(items[tid], run_id) == answer["document"]
