"""Test configuration: the suite uses its own database, buckets and topics on the same local servers,
never the demo's data. Topic and group names carry a per-session prefix, so leftovers of an earlier
session can never be consumed by this one."""

from __future__ import annotations

import os
import uuid

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
}
os.environ.update(TEST_ENV)
