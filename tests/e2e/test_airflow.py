"""Airflow 3 (its own virtualenv, made by ``make airflow-venv``) parses the DAG folder without import
errors, and ``airflow dags test`` of ``bigtech_ingest`` publishes ``ingest.requested`` through the Kafka
provider, waits in a deferred sensor and ends with the run in the gateway with exact counts; a second
DAG run of the same logical date adds nothing and fails on the reject threshold."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest

from infra import airflow_local
from lake.adapters.mysql import connect
from lake.cli import create_key
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e

LOGICAL_DATE = "2026-01-05"
CONF = {"source": "generated", "rows": 2400, "seed": 1105, "max_rejected_share": 0.05}
COUNTS = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")


@pytest.fixture(scope="module")
def analyst_key(settings: Settings) -> str:
    return create_key(settings, "e2e airflow", "analyst")


@pytest.fixture(scope="module")
def airflow_env(
    settings: Settings, services: Services, analyst_key: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    env = airflow_local.airflow_env(
        settings, tmp_path_factory.mktemp("airflow-home"), services.gateway, analyst_key
    )
    airflow_local.migrate(env)
    return env


def report(services: Services, key: str, run_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{services.gateway}/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_airflow_imports_the_dag_folder_without_errors(airflow_env: dict[str, str]):
    errors, dags = airflow_local.local_dags(airflow_env)
    assert errors == []
    assert [d["dag_id"] for d in dags] == ["bigtech_ingest"]


def test_the_dag_runs_daily_without_catch_up_with_retries_and_a_deferrable_wait(airflow_env: dict[str, str]):
    facts = airflow_local.dag_facts(airflow_env)
    assert (
        facts["schedule"] == "@daily"
        and facts["cron"] == "0 0 * * *"
        and facts["catchup"] is False
        and facts["max_active_runs"] == 1
    )
    assert facts["params"] == ["max_rejected_share", "path", "rows", "seed", "source", "version"]
    tasks = facts["tasks"]
    assert tasks["publish_ingest_requested"]["type"] == "ProduceToTopicOperator"  # the Kafka provider
    assert tasks["wait_for_run"]["type"] == "LakeRunSensor"  # defers to the triggerer (see the runs below)
    assert all(t["retries"] == 2 and t["retry_delay_s"] == 60 for t in tasks.values())


@pytest.fixture(scope="module")
def dag_run(airflow_env: dict[str, str]) -> str:
    done = airflow_local.dags_test(airflow_env, LOGICAL_DATE, CONF)
    Path(airflow_env["AIRFLOW_HOME"], "first-dags-test.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return airflow_local.run_id(LOGICAL_DATE)


def test_a_dag_run_ends_with_the_run_in_the_gateway_with_exact_counts(
    dag_run: str, services: Services, analyst_key: str, settings: Settings
):
    r = report(services, analyst_key, dag_run)
    assert r["status"] == "succeeded" and r["requested_by"] == "airflow"
    assert r["source"] == {"source": "generated", "rows": 2400, "seed": 1105, "malformed_share": 0.002}
    assert r["raw_rows"] == 2400
    assert r["raw_rows"] == r["staged_rows"] + r["rejected_rows"] + r["duplicate_rows"]
    assert r["rejected_rows"] == sum(r["rejected_by_reason"].values()) > 0
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tweets WHERE run_id = %s", (dag_run,))
        assert cur.fetchone() == (r["staged_rows"],)
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        docs = mongo[settings.mongo.database][settings.mongo.collection]
        assert docs.count_documents({"lineage.run_id": dag_run}) == r["curated_docs"] == r["staged_rows"]
    finally:
        mongo.close()


def test_the_same_logical_date_again_adds_nothing_and_fails_above_the_reject_threshold(
    dag_run: str, airflow_env: dict[str, str], services: Services, analyst_key: str
):
    before = report(services, analyst_key, dag_run)
    strict = {**CONF, "max_rejected_share": 0.0}
    done = airflow_local.dags_test(airflow_env, LOGICAL_DATE, strict)
    assert done.returncode != 0  # the DAG run failed...
    output = done.stdout + done.stderr
    assert f"run {dag_run} rejected" in output and "above the limit of 0.00%" in output  # ...and says why
    after = report(services, analyst_key, dag_run)
    assert {k: after[k] for k in COUNTS} == {k: before[k] for k in COUNTS}
    assert after["layers"] == before["layers"]  # no chunk was published or processed again


def test_a_failed_run_fails_the_dag_run_and_a_new_dag_run_of_the_date_requests_a_new_run(
    airflow_env: dict[str, str], services: Services
):
    date = "2026-01-06"
    done = airflow_local.dags_test(airflow_env, date, {"source": "path", "path": "/etc"})
    assert done.returncode != 0
    first = airflow_local.run_id(date)
    assert f"run {first} failed: ingest refused" in done.stdout + done.stderr
    again = airflow_local.dags_test(airflow_env, date, {"source": "generated", "rows": 900, "seed": 6})
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    report = airflow_local.run_report(airflow_env, date)
    assert report["run_id"] == f"{first}-r2" and report["status"] == "succeeded" and report["raw_rows"] == 900


TRIGGER_CHECK = """
import asyncio, importlib, json, sys, time
sys.path.insert(0, sys.argv[1])
from bigtech_lake_sensor import LakeRunTrigger

def import_string(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)

classpath, kwargs = LakeRunTrigger("no-such-run", 0.2, time.time() - 1, time.time() + 60).serialize()
json.dumps(kwargs)  # what Airflow stores: plain JSON, no secret
trigger = import_string(classpath)(**kwargs)  # how the triggerer rebuilds it

async def first_event():
    async for event in trigger.run():
        return event.payload

print(json.dumps({"classpath": classpath, "kwargs": kwargs, "event": asyncio.run(first_event())}))
"""


def trigger_event(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(airflow_local.venv() / "bin" / "python"), "-c", TRIGGER_CHECK, str(airflow_local.PLUGINS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_the_trigger_survives_serialization_and_ends_with_a_clear_error(airflow_env: dict[str, str]):
    """What ``airflow dags test`` skips (it runs the trigger object in-process): the triggerer
    rebuilds the trigger from its class path and JSON arguments, which hold no secret."""
    out = trigger_event(airflow_env)
    assert out["classpath"] == "bigtech_lake_sensor.LakeRunTrigger"
    assert set(out["kwargs"]) == {"run_id", "poll_interval", "pickup_by", "end_at"}
    assert out["event"]["kind"] == "not_picked_up" and "is the ingestor running" in out["event"]["error"]
    refused = trigger_event({**airflow_env, "LAKE_GATEWAY_API_KEY": "lk_nope_nope"})
    assert refused["event"]["kind"] == "refused" and "401" in refused["event"]["error"]
