"""The services as separate processes (two stagers, two curators) against the real stack, with the
test settings; stopped at the end of the session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake.cli import create_key
from lake.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class Services:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, module: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway.port}"


@pytest.fixture(scope="session")
def services(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    log_dir = Path(os.environ.get("LAKE_TEST_LOG_DIR", tmp_path_factory.mktemp("service-logs")))
    log_dir.mkdir(parents=True, exist_ok=True)
    svc = Services(settings, log_dir)
    small = {"LAKE_CHUNK_ROWS": "1500"}
    svc.start("ingestor", "services.ingestor", **small)
    for i in (1, 2):
        svc.start(f"stager-{i}", "services.stager")
        svc.start(f"curator-{i}", "services.curator")
    svc.start("gateway", "services.gateway")
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{svc.gateway}/openapi.json", timeout=2)  # noqa: S310
            break
        except OSError:
            if time.monotonic() > deadline:
                svc.stop_all()
                raise RuntimeError(f"the gateway did not start; logs in {log_dir}") from None
            time.sleep(0.3)
    yield svc
    svc.stop_all()


@pytest.fixture(scope="session")
def admin_key(settings: Settings) -> str:
    return create_key(settings, "e2e admin", "admin")


@pytest.fixture(scope="session")
def viewer_key(settings: Settings) -> str:
    return create_key(settings, "e2e viewer", "viewer")
