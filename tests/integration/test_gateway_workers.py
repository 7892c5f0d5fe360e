"""The gateway with several worker processes (LAKE_GATEWAY_WORKERS): every process answers on the
one port, and /metrics sums the counts of all of them, whichever process serves the scrape."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from bench.pipeline import parent_pids
from lake.cli import create_key
from lake.settings import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port, metrics_dir = free_port(), tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # an earlier run's file: removed at start
    env = os.environ | {
        "LAKE_GATEWAY_PORT": str(port),
        "LAKE_GATEWAY_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.gateway"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:  # not counted below
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
        time.sleep(0.2)
    yield url, metrics_dir, proc
    proc.terminate()
    proc.wait(30)
    log.close()


def health_answers(metrics_dir: Path) -> dict[str, float]:
    """Per worker process (one counter file each): the /health answers it counted."""
    out = {}
    for f in metrics_dir.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(f)])  # type: ignore[no-untyped-call]
        samples = [s for m in merged for s in m.samples]
        out[f.name] = sum(
            s.value
            for s in samples
            if s.name == "lake_gateway_requests_total" and s.labels["route"] == "/health"
        )
    return out


def test_two_workers_share_the_port_and_metrics_sum_over_both(gateway, settings: Settings):
    url, metrics_dir, proc = gateway
    assert not (metrics_dir / "counter_999999.db").exists()
    children = [Path(f"/proc/{p}") for p, parent in parent_pids().items() if parent == proc.pid]
    assert len([c for c in children if b"python" in (c / "cmdline").read_bytes()]) >= 2
    sent = 0
    deadline = time.monotonic() + 60
    # a new connection each time: the kernel hands them to either process
    while len([n for n in health_answers(metrics_dir).values() if n > 0]) < 2:
        assert time.monotonic() < deadline, (
            f"one worker answered every request: {health_answers(metrics_dir)}"
        )
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/health").status_code == 200
        sent += 1
    key = create_key(settings, "workers-test", "analyst")
    scrape = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert scrape.status_code == 200
    served = re.findall(
        r'^lake_gateway_requests_total\{method="GET",route="/health",status="200"\} (\S+)$',
        scrape.text,
        re.MULTILINE,
    )
    assert [float(v) for v in served] == [sent], scrape.text[-2000:]  # one line: the sum of both
