"""The walking skeleton end to end: four services as processes (two stagers, two curators) talk only
through Kafka and the stores; a run reconciles exactly, replays change nothing, bad events are
dead-lettered, and the gateway reports it all."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from kafka import KafkaConsumer, TopicPartition

from lake.adapters.broker import send_event
from lake.adapters.mysql import connect
from lake.adapters.run_ledger import RunLedger
from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource, PathSource, RawChunkReady, dlq
from lake.runs import request_run
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e


def scalar(cur: Any) -> Any:
    row = cur.fetchone()
    assert row is not None
    return row[0]


COUNTS = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")


def events_on(settings: Settings, topic: str, timeout_s: float = 5.0) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    parts = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = list(consumer)
    consumer.close()
    return out


@pytest.fixture(scope="module")
def first_run(services: Services, settings: Settings) -> dict[str, Any]:
    run_id = request_run(settings, GeneratedSource(rows=12_000, seed=2026, malformed_share=0.003), "e2e")
    summary = wait_for_run(settings, run_id, timeout=240, expected_rows=12_000)
    assert summary["status"] == "succeeded", summary
    return summary


def test_a_run_reconciles_exactly_across_two_replicas(first_run: dict[str, Any], settings: Settings):
    c = first_run
    assert c["raw_rows"] == 12_000
    assert c["raw_rows"] == c["staged_rows"] + c["rejected_rows"] + c["duplicate_rows"]
    assert c["curated_docs"] == c["staged_rows"]
    assert c["rejected_rows"] > 0 and c["duplicate_rows"] > 0
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tweets WHERE run_id = %s", (c["run_id"],))
        assert scalar(cur) == c["staged_rows"]
        cur.execute(
            "SELECT COUNT(DISTINCT chunk_id) FROM chunk_progress WHERE run_id = %s AND layer = 'staged'",
            (c["run_id"],),
        )
        assert scalar(cur) == 8  # 12,000 records in chunks of 1,500
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        coll = mongo[settings.mongo.database][settings.mongo.collection]
        assert coll.count_documents({"lineage.run_id": c["run_id"]}) == c["curated_docs"]
    finally:
        mongo.close()


def test_both_replicas_of_stager_and_curator_took_part(first_run: dict[str, Any], services: Services):
    for svc in ("stager", "curator"):
        worked = [
            name
            for name in (f"{svc}-1", f"{svc}-2")
            if '"chunk_id"' in (services.log_dir / f"{name}.log").read_text(errors="replace")
        ]
        assert len(worked) == 2, f"only {worked} processed chunks"


def test_a_raw_event_delivered_twice_changes_no_count(first_run: dict[str, Any], settings: Settings):
    raw_events = [
        RawChunkReady.model_validate_json(m.value) for m in events_on(settings, settings.topic("raw.ready"))
    ]
    mine = [e for e in raw_events if e.run_id == first_run["run_id"]]
    assert len(mine) == 8
    repo = RunLedger(settings.mysql)
    with repo.conn.cursor() as cur:
        cur.execute("SELECT NOW(3)")
        before = scalar(cur)
    repo.conn.commit()
    for event in mine[:3]:
        send_event(settings, event)
    try:
        # A curated replay replaces the chunk's documents in place, 50 per update command (FerretDB
        # trap 2, docs/decisions.md): allow minutes, this checks exactness, not speed.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # the replays are processed: chunk rows get new finish times
            counts = repo.run_counts(first_run["run_id"])
            assert {k: counts[k] for k in COUNTS} == {k: first_run[k] for k in COUNTS}
            with repo.conn.cursor() as cur:
                cur.execute(
                    "SELECT COUNT(*) FROM chunk_progress WHERE run_id = %s AND layer = 'curated'"
                    " AND finished_at > %s AND chunk_id IN (%s, %s, %s)",
                    (first_run["run_id"], before, *[e.chunk_id for e in mine[:3]]),
                )
                replayed = scalar(cur)
            repo.conn.commit()
            if replayed == 3:
                break
            time.sleep(0.5)
        assert replayed == 3
        assert repo.run_counts(first_run["run_id"]) == {k: first_run[k] for k in COUNTS}
    finally:
        repo.close()


def test_an_event_that_does_not_validate_goes_to_the_dead_letter_topic(
    services: Services, settings: Settings
):
    from kafka import KafkaProducer

    marker = uuid.uuid4().hex
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    producer.send(settings.topic("raw.ready"), key=marker.encode(), value=b'{"not": "an event"}').get(10)
    producer.close()
    deadline = time.monotonic() + 60
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not letters:
        letters = [
            json.loads(m.value)
            for m in events_on(settings, dlq(settings.topic("raw.ready")), 2)
            if m.key == marker.encode()
        ]
    assert letters, "nothing reached the dead-letter topic"
    assert letters[0]["error_type"] == "ValidationError" and letters[0]["attempts"] == 1
    assert letters[0]["value"] == '{"not": "an event"}' and letters[0]["service"] == "stager"


def test_refused_input_fails_the_run_with_a_message(services: Services, settings: Settings):
    run_id = request_run(settings, PathSource(path="/etc"), "e2e")
    summary = wait_for_run(settings, run_id, timeout=60)
    assert summary["status"] == "failed"
    assert "outside the allowed roots" in summary["error"]
    # Neither the run's error nor the gateway's refusal reveals the server's folders.
    server_folders = {str(Path.cwd().resolve()), *(str(r.resolve()) for r in settings.pipeline.allowed_roots)}
    admin = create_key(settings, "e2e refusal admin", "admin")
    with httpx.Client(
        base_url=services.gateway, timeout=10, headers={"Authorization": f"Bearer {admin}"}
    ) as http:
        refused = http.post("/runs", json={"source": "path", "path": "/etc"})
        report = http.get(f"/runs/{run_id}")
    assert refused.status_code == 422 and "outside the allowed roots" in refused.text
    for body in (summary["error"], refused.text, report.text):
        assert not any(folder in body for folder in server_folders), body


def test_gateway_health_stats_and_run_report(first_run: dict[str, Any], services: Services, admin_key: str):
    with httpx.Client(base_url=services.gateway, timeout=10) as http:
        health = http.get("/health")
        assert health.status_code == 200
        assert health.json()["services"] == {"s3": True, "mysql": True, "mongodb": True, "kafka": True}
        # the fields the reference implementation's clients read (shared/DESIGN.md)
        assert health.json()["api_status"] == health.json()["status"] == "ok"
        probed = datetime.fromisoformat(health.json()["timestamp"])
        assert probed.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - probed) < timedelta(minutes=1)
        auth = {"Authorization": f"Bearer {admin_key}"}
        stats = http.get("/stats", headers=auth).json()
        assert stats["staging_row_count"] >= first_run["staged_rows"]
        # (other tests of the namespace may leave chunks staged but not curated)
        assert first_run["curated_docs"] <= stats["curated_row_count"] <= stats["staging_row_count"]
        assert sum(stats["by_company"].values()) == stats["staging_row_count"]
        report = http.get(f"/runs/{first_run['run_id']}", headers=auth).json()
        assert report["status"] == "succeeded"
        assert {k: report[k] for k in COUNTS} == {k: first_run[k] for k in COUNTS}
        assert sum(report["rejected_by_reason"].values()) == first_run["rejected_rows"]
        assert all(layer["status"] == "succeeded" for layer in report["layers"].values())


def test_gateway_refuses_missing_bad_and_underprivileged_keys(services: Services, viewer_key: str):
    with httpx.Client(base_url=services.gateway, timeout=10) as http:
        assert http.get("/stats").status_code == 401
        assert http.get("/stats", headers={"Authorization": "Bearer lk_nope_nope"}).status_code == 401
        viewer = {"Authorization": f"Bearer {viewer_key}"}
        assert http.get("/stats", headers=viewer).status_code == 200
        denied = http.post("/runs", headers=viewer, json={"source": "generated", "rows": 10})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"


def test_gateway_starts_a_run_for_an_admin(services: Services, admin_key: str, settings: Settings):
    auth = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=services.gateway, timeout=10) as http:
        too_many = http.post("/runs", headers=auth, json={"source": "generated", "rows": 10**9})
        assert too_many.status_code == 422 and "exceeds" in too_many.json()["error"]["message"]
        accepted = http.post("/runs", headers=auth, json={"source": "generated", "rows": 800, "seed": 4})
        assert accepted.status_code == 202
    summary = wait_for_run(settings, accepted.json()["run_id"], timeout=120)
    assert summary["status"] == "succeeded" and summary["raw_rows"] == 800


def test_the_airflow_dags_client_starts_a_run_and_follows_it(
    services: Services, admin_key: str, monkeypatch: pytest.MonkeyPatch
):
    """The DAG's standard-library client, as scripts outside Airflow use it (``start_run`` goes
    through the gateway with an admin key; the DAG itself is tested in test_airflow.py)."""
    from infra.airflow_local import client as lake_client

    client = lake_client()
    monkeypatch.setenv("LAKE_GATEWAY_URL", services.gateway)
    monkeypatch.setenv("LAKE_GATEWAY_API_KEY", admin_key)
    run_id = client.start_run({"source": "generated", "rows": 600, "seed": 77})
    deadline = time.monotonic() + 120
    report = client.run_report(run_id)
    while report["status"] not in client.TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        report = client.run_report(run_id)
    assert report["status"] == "succeeded" and report["raw_rows"] == 600
    monkeypatch.setenv("LAKE_GATEWAY_API_KEY", "lk_nope_nope")
    with pytest.raises(RuntimeError, match="gateway answered 401"):
        client.run_report(run_id)
