"""/health tells a stalled layer from a busy one, against the real stack: with the curators stopped
mid-run, the curate layer has lag and finishes nothing, so /health answers 200 ``degraded`` naming
it (a viewer key also sees the lag); once the curators are back the run completes and /health is
``ok`` again. The gateway under test is its own process, with a stall period of 3 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lake.cli import wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.conftest import free_port
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e
CURATORS = ("curator-1", "curator-2")


def poll(http: httpx.Client, until: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = http.get("/health").json()
        if until(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_a_layer_whose_consumers_stopped_is_reported_stalled_then_recovers(
    services: Services, settings: Settings, viewer_key: str
):
    port = free_port()
    services.start(
        "gateway-stall", "services.gateway", LAKE_GATEWAY_PORT=str(port), LAKE_GATEWAY_STALL_AFTER_S="3"
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert _wait_up(http)
            ready = http.get("/health").json()
            assert ready["status"] == "ok" and ready["stalled"] == [], ready  # nothing stalled before
            for name in CURATORS:
                services.stop(name)
            run_id = request_run(settings, GeneratedSource(rows=3000, seed=9393), "e2e-stall")
            stalled = poll(http, lambda b: b["stalled"] == ["curate"])
            assert stalled["stalled"] == ["curate"], stalled
            anonymous = http.get("/health")
            assert anonymous.status_code == 200
            assert anonymous.json()["status"] == anonymous.json()["api_status"] == "degraded"
            assert anonymous.json()["layers"] is None  # without a key: only which layer
            seen = http.get("/health", headers={"Authorization": f"Bearer {viewer_key}"}).json()
            assert seen["layers"]["curate"]["lag"] == 2 and seen["layers"]["stage"]["lag"] == 0, seen
            for name in CURATORS:
                services.start(name, "services.curator")
            run = wait_for_run(settings, run_id, timeout=240, expected_rows=3000)
            assert run["status"] == "succeeded", run
            back = poll(http, lambda b: b["status"] == "ok")
            assert back["stalled"] == [] and back["api_status"] == "ok", back
    finally:
        for name in CURATORS:
            if name not in services.procs:
                services.start(name, "services.curator")
        services.stop("gateway-stall")


def _wait_up(http: httpx.Client, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            http.get("/openapi.json")
            return True
        except httpx.TransportError:
            time.sleep(0.3)
    return False
