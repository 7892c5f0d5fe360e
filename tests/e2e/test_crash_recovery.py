"""A stager killed with SIGKILL in the middle of a run, then restarted: every layer's counts are exact
(nothing lost, nothing doubled). Services log JSON lines carrying run_id and chunk_id, expose
Prometheus metrics, and end cleanly on SIGTERM."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import urllib.request
from typing import Any

import polars as pl
import pymongo
import pytest

from lake.adapters.mysql import connect
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.cli import wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.conftest import free_port
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e

ROWS = 12_000  # 8 chunks of 1,500: a kill lands once one is staged, with the others in flight


def one(cur: Any, sql: str, *args: Any) -> int:
    cur.execute(sql, args)
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def assert_every_layer_holds_exactly(settings: Settings, run: dict[str, Any], rows: int = ROWS) -> None:
    """The run's counts reconcile, and each layer (MySQL, S3, MongoDB) holds exactly them."""
    run_id = run["run_id"]
    assert run["raw_rows"] == rows
    assert run["raw_rows"] == run["staged_rows"] + run["rejected_rows"] + run["duplicate_rows"]
    assert run["curated_docs"] == run["staged_rows"]
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        assert one(cur, "SELECT COUNT(*) FROM tweets WHERE run_id = %s", run_id) == run["staged_rows"]
        assert (
            one(cur, "SELECT COUNT(*) FROM rejected_rows WHERE run_id = %s", run_id) == run["rejected_rows"]
        )
        for layer in ("raw", "staged", "curated"):
            chunks = one(
                cur,
                "SELECT COUNT(*) FROM chunk_progress WHERE run_id = %s AND layer = %s",
                run_id,
                layer,
            )
            assert chunks == -(-rows // 1500), layer
    store = S3ObjectStore.from_settings(settings.s3)
    staged_rows = sum(
        pl.read_parquet(io.BytesIO(store.get_bytes(settings.s3.staging_bucket, o["Key"]))).height
        for o in store.list_keys(settings.s3.staging_bucket, f"tweets/run_id={run_id}/")
    )
    assert staged_rows == run["staged_rows"]
    rejected_lines = sum(
        store.get_bytes(settings.s3.staging_bucket, o["Key"]).count(b"\n")
        for o in store.list_keys(settings.s3.staging_bucket, f"rejected/run_id={run_id}/")
    )
    assert rejected_lines == run["rejected_rows"]
    curated_keys = [
        o["Key"]
        for o in store.list_keys(settings.s3.curated_bucket, "tweets/")
        if f"/{run_id}-part-" in o["Key"]
    ]
    parquet_ids: list[int] = []
    for key in curated_keys:
        parquet_ids += pl.read_parquet(
            io.BytesIO(store.get_bytes(settings.s3.curated_bucket, key)), columns=["twitter_id"]
        )["twitter_id"].to_list()
    assert len(parquet_ids) == len(set(parquet_ids)) == run["staged_rows"]
    assert list(store.list_keys(settings.s3.curated_bucket, f"_chunks/run_id={run_id}/")) == []
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        coll = mongo[settings.mongo.database][settings.mongo.collection]
        assert coll.count_documents({"lineage.run_id": run_id}) == run["staged_rows"]
    finally:
        mongo.close()


def test_a_stager_killed_mid_run_and_restarted_leaves_every_count_exact(
    services: Services, settings: Settings
):
    run_id = request_run(settings, GeneratedSource(rows=ROWS, seed=4242, malformed_share=0.003), "e2e-crash")
    repo = RunLedger(settings.mysql)
    try:
        deadline = time.monotonic() + 120
        while True:  # kill once some chunks are staged and others are not
            staged = repo.run_counts(run_id)["raw_rows"] and _staged_chunks(repo, run_id)
            if 1 <= staged < ROWS // 1500 - 4:
                break
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
    finally:
        repo.close()
    victim = services.procs["stager-1"]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    assert victim.returncode == -signal.SIGKILL
    services.procs.pop("stager-1")
    services.start("stager-1", "services.stager")
    run = wait_for_run(settings, run_id, timeout=300, expected_rows=ROWS)
    assert run["status"] == "succeeded", run
    assert_every_layer_holds_exactly(settings, run)


def _staged_chunks(repo: RunLedger, run_id: str) -> int:
    with repo.conn.cursor() as cur:
        n = one(cur, "SELECT COUNT(*) FROM chunk_progress WHERE run_id = %s AND layer = 'staged'", run_id)
    repo.conn.commit()
    return n


def test_service_logs_are_json_lines_with_run_and_chunk(services: Services):
    lines = [
        json.loads(line)
        for line in (services.log_dir / "stager-2.log").read_text().splitlines()
        if line.startswith("{")
    ]
    staged = [e for e in lines if e["msg"] == "chunk staged"]
    assert staged, "stager-2 staged nothing"
    for entry in staged:
        assert entry["service"] == "stager" and entry["level"] == "info"
        assert entry["run_id"] and isinstance(entry["chunk_id"], int)
        assert {"raw_rows", "rejected_rows", "duplicate_rows", "staged_rows"} <= set(entry)


def metric(body: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_stagers_stop_cleanly_on_sigterm_and_metrics_count_exactly(services: Services, settings: Settings):
    for name in ("stager-1", "stager-2"):  # SIGTERM: finish the current event, leave the group, exit 0
        proc = services.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, name
        last = json.loads((services.log_dir / f"{name}.log").read_text().strip().splitlines()[-1])
        assert last["msg"] == "stopped"
    port = free_port()
    services.start("stager-metrics", "services.stager", LAKE_METRICS_PORT=str(port))
    try:
        run_id = request_run(settings, GeneratedSource(rows=3000, seed=77), "e2e-metrics")
        run = wait_for_run(settings, run_id, timeout=120, expected_rows=3000)
        assert run["status"] == "succeeded"
        url = f"http://127.0.0.1:{port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        for outcome, count in (
            ("staged", "staged_rows"),
            ("rejected", "rejected_rows"),
            ("duplicate", "duplicate_rows"),
        ):
            assert metric(body, "lake_records_total", service="stager", outcome=outcome) == run[count], (
                outcome
            )
        assert metric(body, "lake_events_total", service="stager", outcome="ok") == 2
        assert metric(body, "lake_chunk_seconds_count", service="stager") == 2
    finally:
        services.stop("stager-metrics")
        services.start("stager-1", "services.stager")
        services.start("stager-2", "services.stager")
