"""The DAG's standard-library client builds exactly the platform's ``ingest.requested`` event, and its
run ids are ones the gateway accepts (the client is imported from the plugins folder, as Airflow does)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType

import pytest

from infra import airflow_local
from lake.events import GeneratedSource, IngestRequested, KaggleSource, PathSource, parse
from services.gateway.read.runs import RUN_ID


@pytest.fixture(scope="module")
def client() -> ModuleType:
    return airflow_local.client()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "generated", "rows": 1200, "seed": 3}, GeneratedSource(rows=1200, seed=3)),
        ({"source": "path", "path": "/data/bigtech"}, PathSource(path="/data/bigtech")),
        ({"source": "kaggle", "version": None}, KaggleSource()),
        ({"source": "kaggle", "version": 2}, KaggleSource(version=2)),
    ],
)
def test_the_event_is_the_platforms_ingest_requested(client: ModuleType, params, expected):
    key, value = client.ingest_message("bigtech_ingest-20260105T000000", client.source_from_params(params))
    event = parse("ingest.requested", value.encode())
    assert isinstance(event, IngestRequested)
    assert key == event.run_id == "bigtech_ingest-20260105T000000"
    assert event.request == expected and event.requested_by == "airflow"


def test_bad_params_are_refused_with_the_fix(client: ModuleType):
    with pytest.raises(ValueError, match="needs the param 'path'"):
        client.source_from_params({"source": "path", "path": None})
    with pytest.raises(ValueError, match="choose one of generated, path, kaggle"):
        client.source_from_params({"source": "ftp"})


def test_one_run_id_per_logical_date_in_the_gateways_alphabet(client: ModuleType):
    midnight = datetime(2026, 1, 5, tzinfo=UTC)
    same_instant = midnight.astimezone(timezone(timedelta(hours=2)))
    assert client.run_id_for("bigtech_ingest", midnight, "x") == "bigtech_ingest-20260105T000000"
    assert client.run_id_for("bigtech_ingest", same_instant, "y") == "bigtech_ingest-20260105T000000"
    manual = client.run_id_for("bigtech_ingest", None, "manual__2026-01-05T10:11:12.123456+00:00")
    assert re.fullmatch(RUN_ID, manual) and manual.startswith("bigtech_ingest-manual__")


def test_topic_carries_the_services_prefix(client: ModuleType, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAKE_KAFKA_TOPIC_PREFIX", "staging-a.")
    assert client.ingest_topic() == "staging-a.ingest.requested"


def test_rejected_share(client: ModuleType):
    assert client.rejected_share({"raw_rows": 200, "rejected_rows": 3}) == 0.015
    assert client.rejected_share({"raw_rows": 0, "rejected_rows": 0}) == 0.0


def test_a_date_reuses_its_run_unless_it_failed(client: ModuleType, monkeypatch: pytest.MonkeyPatch):
    statuses = {"d": "failed", "d-r2": "failed", "d-r3": "running"}
    monkeypatch.setattr(client, "run_report", lambda rid: {"status": statuses.get(rid, client.NOT_FOUND)})
    assert client.run_id_to_request("d") == "d-r3"  # running: the same run again (idempotent)
    assert client.latest_attempt("d") == "d-r3"
    statuses["d-r3"] = "failed"
    assert client.run_id_to_request("d") == "d-r4"  # no such run yet: the next attempt
    statuses["d-r4"] = "requested"  # accepted, not taken yet: the same run again
    assert client.run_id_to_request("d") == "d-r4" and client.latest_attempt("d") == "d-r4"
    assert client.run_id_to_request("fresh") == "fresh"
    monkeypatch.setattr(client, "run_report", lambda rid: {"status": "failed"})
    with pytest.raises(RuntimeError, match="9 runs of d failed"):
        client.run_id_to_request("d")


def test_a_delivery_error_fails_the_publishing_task(client: ModuleType):
    client.raise_on_delivery_error(None, object())  # delivered: nothing happens
    with pytest.raises(RuntimeError, match="not delivered to Kafka: broker down"):
        client.raise_on_delivery_error("broker down", object())


def test_the_progress_line_names_the_run_its_five_counts_and_the_rejected_share(client: ModuleType):
    report = {
        "run_id": "bigtech_ingest-20260105T000000",
        "status": "running",
        "raw_rows": 20000,
        "rejected_rows": 40,
        "duplicate_rows": 300,
        "staged_rows": 19660,
        "curated_docs": 12000,
    }
    assert client.progress_line(report) == (
        "run bigtech_ingest-20260105T000000 running: raw_rows 20,000, rejected_rows 40,"
        " duplicate_rows 300, staged_rows 19,660, curated_docs 12,000; rejected share 0.20%"
    )
    assert client.progress_line({"run_id": "r", "status": "requested"}).endswith(
        "curated_docs 0; rejected share 0.00%"
    )
