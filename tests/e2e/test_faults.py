"""A store fails in the middle of a run, one fault per test: the services wait for it (one log line
per back-off step, naming the store) instead of dead-lettering, and once it is back the run ends
``succeeded`` with exact counts in every layer, no dead letter, and every service still running.

The servers are the local stack's own (``infra.stack``): a fault is a signal to the server's
process, and a restart is what ``make up`` does. Each test proves its fault landed while chunks were
in flight (some staged, not all curated) and restores the server even when it fails."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from infra.stack import Proc, up_servers
from lake.adapters.mysql import connect
from lake.cli import wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.e2e.conftest import Services
from tests.e2e.test_crash_recovery import ROWS, assert_every_layer_holds_exactly, one

pytestmark = pytest.mark.e2e
CHUNKS = -(-ROWS // 1500)
DOWN_S = 8.0  # longer than the first back-off steps; far shorter than LAKE_KAFKA_STORE_WAIT_S


def chunks(settings: Settings, run_id: str, layer: str) -> int:
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        return one(cur, "SELECT COUNT(*) FROM chunk_progress WHERE run_id = %s AND layer = %s", run_id, layer)


def wait_until_in_flight(settings: Settings, run_id: str, min_curated: int = 0) -> tuple[int, int]:
    """Once some chunks are staged (and ``min_curated`` curated) and most are not yet curated:
    (staged, curated) chunks then."""
    deadline = time.monotonic() + 120
    while True:
        staged, curated = chunks(settings, run_id, "staged"), chunks(settings, run_id, "curated")
        if staged >= 1 and min_curated <= curated < CHUNKS - 4:
            return staged, curated
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)


@contextmanager
def restored(server: str) -> Iterator[Proc]:
    """The server's process; whatever happens in the block, the server runs again after it."""
    proc = Proc(server)
    try:
        yield proc
    finally:
        pid = proc.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)  # harmless when it is not stopped
        up_servers((server,))


def lines_naming(services: Services, store: str) -> list[str]:
    out = []
    for log in services.log_dir.glob("*.log"):
        out += [
            line for line in log.read_text(errors="replace").splitlines() if f"{store} unavailable" in line
        ]
    return out


def log_sizes(services: Services) -> dict[str, int]:
    return {log.name: log.stat().st_size for log in services.log_dir.glob("*.log")}


def library_warnings_since(services: Services, sizes: dict[str, int]) -> dict[str, int]:
    """Per service log: warning and error lines of the Kafka client written since ``sizes``."""
    out = {}
    for log in services.log_dir.glob("*.log"):
        with log.open("rb") as f:
            f.seek(sizes.get(log.name, 0))
            lines = f.read().decode(errors="replace").splitlines()
        out[log.name] = sum('"logger": "kafka.' in line and '"level": "info"' not in line for line in lines)
    return out


def assert_run_exact_and_services_alive(
    services: Services, settings: Settings, run_id: str, waits_before: int, store: str | None
) -> dict[str, Any]:
    run = wait_for_run(settings, run_id, timeout=300, expected_rows=ROWS)
    assert run["status"] == "succeeded", run
    assert_every_layer_holds_exactly(settings, run)
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        assert one(cur, "SELECT COUNT(*) FROM dead_letters WHERE run_id = %s", run_id) == 0
    for name, proc in services.procs.items():
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
    if store is not None:  # the services waited for the store, and said so
        assert len(lines_naming(services, store)) > waits_before
    # the gateway answers again (its pool replaces connections to the restarted server)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{services.gateway}/health", timeout=5) as answer:  # noqa: S310
                if answer.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the gateway's /health never answered 200 again"
        time.sleep(0.5)
    return run


# MySQL and MongoDB errors reach the consumer loop, which waits and logs one line per step. S3 and
# Kafka outages this short are absorbed inside the clients (boto3's own retries, kafka-python's
# reconnects), so no line of ours need appear; the run must still end exact.
WAITED_BY_THE_LOOP = {"mysql": True, "mongodb": True, "s3": False, "kafka": False}


@pytest.mark.parametrize(
    ("server", "store"), [("mariadb", "mysql"), ("ferretdb", "mongodb"), ("s3", "s3"), ("kafka", "kafka")]
)
def test_a_store_sigkilled_mid_run_and_restarted_leaves_the_run_exact(
    services: Services, settings: Settings, server: str, store: str
):
    waits_before = len(lines_naming(services, store))
    sizes = log_sizes(services)
    seed = {"mariadb": 51, "ferretdb": 52, "s3": 53, "kafka": 54}[server]
    run_id = request_run(
        settings, GeneratedSource(rows=ROWS, seed=seed, malformed_share=0.003), f"e2e-{server}"
    )
    with restored(server) as proc:
        wait_until_in_flight(settings, run_id)
        pid = proc.pid()
        assert pid is not None, f"{server} is not running"
        os.kill(pid, signal.SIGKILL)
        time.sleep(DOWN_S)
    assert_run_exact_and_services_alive(
        services, settings, run_id, waits_before, store if WAITED_BY_THE_LOOP[store] else None
    )
    # no flood: the Kafka client's own complaints are kept to a line per logger and level per 10 s
    flood = {name: n for name, n in library_warnings_since(services, sizes).items() if n > 40}
    assert flood == {}, flood


def test_mariadb_stalled_by_sigstop_mid_run_then_continued_leaves_the_run_exact(
    services: Services, settings: Settings
):
    run_id = request_run(settings, GeneratedSource(rows=ROWS, seed=55, malformed_share=0.003), "e2e-stall")
    with restored("mariadb") as proc:
        wait_until_in_flight(settings, run_id)
        pid = proc.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        time.sleep(DOWN_S)
        os.kill(pid, signal.SIGCONT)
    assert_run_exact_and_services_alive(services, settings, run_id, 0, None)


def test_mongodb_down_longer_than_the_wait_budget_fails_the_run_naming_it_and_a_redrive_completes_it(
    services: Services, settings: Settings, admin_key: str
):
    """One curator with a 2 s store budget (LAKE_KAFKA_STORE_WAIT_S): FerretDB down for 8 s
    dead-letters chunks with an error naming MongoDB and fails the run; once it is back, a redrive
    of the run's letters completes it exactly."""
    for name in ("curator-1", "curator-2"):
        services.stop(name)
    # pymongo waits serverSelectionTimeoutMS (30 s by default) for a server before it raises: 1 s
    # here, so the outage reaches the loop and outlasts its 2 s budget
    url = settings.mongo.url + ("&" if "?" in settings.mongo.url else "?") + "serverSelectionTimeoutMS=1000"
    services.start("curator-short", "services.curator", LAKE_KAFKA_STORE_WAIT_S="2", LAKE_MONGO_URL=url)
    try:
        # twice the other tests' rows: the curator must have a backlog while FerretDB is down, or
        # it idles through the outage waiting for staged chunks and the run succeeds
        run_id = request_run(
            settings, GeneratedSource(rows=2 * ROWS, seed=56, malformed_share=0.003), "e2e-budget"
        )
        with restored("ferretdb") as proc:
            wait_until_in_flight(settings, run_id, min_curated=1)  # the new curator is consuming
            pid = proc.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            time.sleep(DOWN_S)
        failed = wait_for_run(settings, run_id, timeout=120)
        assert failed["status"] == "failed", failed
        # the budget (2 s) counts the back-off and the attempts made meanwhile (each can take
        # seconds to fail), so the letter says how long it was in all
        assert re.search(r"StoreUnavailable: mongodb unavailable for \d+ s", failed["error"]), failed
        with httpx.Client(
            base_url=services.gateway, timeout=60, headers={"Authorization": f"Bearer {admin_key}"}
        ) as ops:
            for _ in range(3):  # a letter may still be on its way when the first redrive is sent
                time.sleep(3)
                answer = ops.post("/dead-letters/redrive", json={"run_id": run_id})
                assert answer.status_code == 200, answer.text
                run = wait_for_run(settings, run_id, timeout=240, expected_rows=2 * ROWS)
                if run["status"] == "succeeded":
                    break
            assert run["status"] == "succeeded", run
            assert answer.json()["redriven"] >= 0
            report = ops.get(f"/runs/{run_id}").json()
            assert report["dead_letters"] >= 1 and report["dead_letters_waiting"] == 0, report
        assert_every_layer_holds_exactly(settings, run, rows=2 * ROWS)
    finally:
        services.stop("curator-short")
        for name in ("curator-1", "curator-2"):
            services.start(name, "services.curator")
