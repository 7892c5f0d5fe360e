"""The services as separate processes (two stagers, two curators) against the real stack, with the
test settings; stopped at the end of the session."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake.adapters.broker import admin, all_topics
from lake.cli import bootstrap, create_key, reset_stores
from lake.settings import Settings
from tests.conftest import free_port

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


def start_services(settings: Settings, log_dir: Path, replicas: int = 2, **env: str) -> Services:
    """The ingestor, ``replicas`` stagers and curators and the gateway as processes on ``settings``'
    namespace (``env``: the variables that select it), once the gateway answers."""
    log_dir.mkdir(parents=True, exist_ok=True)
    svc = Services(settings, log_dir)
    svc.start("ingestor", "services.ingestor", LAKE_CHUNK_ROWS="1500", **env)
    for i in range(1, replicas + 1):
        svc.start(f"stager-{i}", "services.stager", **env)
        svc.start(f"curator-{i}", "services.curator", **env)
    svc.start("gateway", "services.gateway", **env)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{svc.gateway}/openapi.json", timeout=2)  # noqa: S310
            return svc
        except OSError:
            if time.monotonic() > deadline:
                svc.stop_all()
                raise RuntimeError(f"the gateway did not start; logs in {log_dir}") from None
            time.sleep(0.3)


@pytest.fixture(scope="session")
def services(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    log_dir = Path(os.environ.get("LAKE_TEST_LOG_DIR", tmp_path_factory.mktemp("service-logs")))
    svc = start_services(settings, log_dir)
    yield svc
    svc.stop_all()


@contextlib.contextmanager
def own_namespace(settings: Settings, name: str, log_dir: Path) -> Iterator[Services]:
    """Services on a namespace of their own (database, collection, buckets, topics, gateway port)
    on the same servers, emptied first: for a module whose checks read every document of its
    namespace, which then holds its own runs only, not every earlier module's (≈ 150k documents
    by the end of the suite). One stager and one curator; dropped at the end."""
    env = {
        "LAKE_MYSQL_DATABASE": f"bigtech_{name}_test",
        "LAKE_MONGO_DATABASE": f"bigtech_{name}_test",
        "LAKE_S3_RAW_BUCKET": f"test-{name}-raw",
        "LAKE_S3_STAGING_BUCKET": f"test-{name}-staging",
        "LAKE_S3_CURATED_BUCKET": f"test-{name}-curated",
        "LAKE_KAFKA_TOPIC_PREFIX": f"{settings.kafka.topic_prefix}{name}.",
        "LAKE_GATEWAY_PORT": str(free_port()),
    }
    own = settings.model_copy(
        update={
            "mysql": settings.mysql.model_copy(update={"database": env["LAKE_MYSQL_DATABASE"]}),
            "mongo": settings.mongo.model_copy(update={"database": env["LAKE_MONGO_DATABASE"]}),
            "s3": settings.s3.model_copy(
                update={
                    "raw_bucket": env["LAKE_S3_RAW_BUCKET"],
                    "staging_bucket": env["LAKE_S3_STAGING_BUCKET"],
                    "curated_bucket": env["LAKE_S3_CURATED_BUCKET"],
                }
            ),
            "kafka": settings.kafka.model_copy(update={"topic_prefix": env["LAKE_KAFKA_TOPIC_PREFIX"]}),
            "gateway": settings.gateway.model_copy(update={"port": int(env["LAKE_GATEWAY_PORT"])}),
        }
    )  # the same namespace as ``env`` gives the services
    reset_stores(own)
    bootstrap(own)
    svc = start_services(own, log_dir / name, replicas=1, **env)
    try:
        yield svc
    finally:
        svc.stop_all()
        reset_stores(own)
        client = admin(own)
        try:
            client.delete_topics(all_topics(own))
        except Exception as exc:  # best effort: the topics carry the session's prefix
            warnings.warn(f"could not delete the namespace's topics: {exc}", stacklevel=1)
        finally:
            client.close()


@pytest.fixture(scope="session")
def admin_key(settings: Settings) -> str:
    return create_key(settings, "e2e admin", "admin")


@pytest.fixture(scope="session")
def viewer_key(settings: Settings) -> str:
    return create_key(settings, "e2e viewer", "viewer")
