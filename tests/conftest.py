"""Test configuration: the suite uses its own database, buckets and topics on the same local servers,
never the demo's data. Topic and group names carry a per-session prefix, so leftovers of an earlier
session can never be consumed by this one."""

from __future__ import annotations

import json
import os
import socket
import uuid
import warnings
from collections.abc import Iterator

import pytest

from lake.adapters.broker import admin, all_topics
from lake.adapters.objectstore import S3ObjectStore
from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.cli import bootstrap, reset_stores
from lake.settings import Settings, get_settings

SESSION = uuid.uuid4().hex[:6]
TEST_ENV = {
    "LAKE_ENVIRONMENT": "test",
    "LAKE_MYSQL_DATABASE": "bigtech_test",
    "LAKE_MONGO_DATABASE": "bigtech_test",
    "LAKE_S3_RAW_BUCKET": "test-raw",
    "LAKE_S3_STAGING_BUCKET": "test-staging",
    "LAKE_S3_CURATED_BUCKET": "test-curated",
    "LAKE_KAFKA_TOPIC_PREFIX": f"test-{SESSION}.",
    "LAKE_KAFKA_GROUP_PREFIX": f"lake-test-{SESSION}",
    "LAKE_GATEWAY_PORT": os.environ.get("LAKE_TEST_GATEWAY_PORT", "18000"),
    "LAKE_WORK_DIR": os.path.join(".lake", "test-work"),
    "HF_HUB_OFFLINE": "1",
    "LAKE_ALLOWED_ROOTS": json.dumps([os.path.join(".lake", "test-inbox")]),
}
os.environ.update(TEST_ENV)


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Test settings with fresh stores: an empty test database, collection and buckets, new topics."""
    get_settings.cache_clear()
    s = get_settings()
    assert s.mysql.database.endswith("_test") and s.kafka.topic_prefix.startswith("test-")
    reset_stores(s)
    bootstrap(s)
    yield s
    client = admin(s)
    try:
        client.delete_topics(all_topics(s))
    except Exception as exc:  # best effort: the topics carry a session prefix and are never reused
        warnings.warn(f"could not delete the session's topics: {exc}", stacklevel=1)
    finally:
        client.close()


@pytest.fixture
def store(settings: Settings) -> S3ObjectStore:
    return S3ObjectStore.from_settings(settings.s3)


@pytest.fixture
def repo(settings: Settings) -> Iterator[StagingRepository]:
    r = StagingRepository(settings.mysql)
    yield r
    r.close()


@pytest.fixture
def ledger(repo: StagingRepository) -> RunLedger:
    """The run ledger on the staging repository's connection (as the services share one)."""
    return RunLedger(repo.db)


def free_port() -> int:
    """A TCP port nothing listens on now (for a process a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
