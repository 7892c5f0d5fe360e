"""The pipeline's state in Kafka (topics, each consumer group's lag, dead-letter depth), read through
the gateway's one admin client: for ``GET /pipeline``, the dashboard and ``/health``'s stall check."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from lake.adapters.broker import all_topics
from lake.events import INGEST_REQUESTED, RAW_READY, STAGED_READY, TOPICS, dlq
from lake.settings import Settings
from services.gateway.stores import Stores

CONSUMERS = {"ingestor": INGEST_REQUESTED, "stager": RAW_READY, "curator": STAGED_READY}


def snapshot(admin: KafkaAdminClient, settings: Settings) -> dict[str, Any]:
    names = all_topics(settings)
    described = {t["name"]: t for t in admin.describe_topics(names) if not t.get("error_code")}
    parts = [TopicPartition(n, p["partition_index"]) for n, t in described.items() for p in t["partitions"]]
    earliest = admin.list_partition_offsets(dict.fromkeys(parts, OffsetSpec.EARLIEST))
    latest = admin.list_partition_offsets(dict.fromkeys(parts, OffsetSpec.LATEST))
    topics = []
    for name in names:
        mine = [tp for tp in parts if tp.topic == name]
        topics.append(
            {
                "name": name,
                "partitions": len(mine),
                "messages": sum(latest[tp].offset - earliest[tp].offset for tp in mine),
                "end_offset": sum(latest[tp].offset for tp in mine),
            }
        )
    groups = []
    for service, topic in CONSUMERS.items():
        group, name = settings.group(service), settings.topic(topic)
        committed = admin.list_group_offsets({group: None}).get(group, {})
        lags = {}
        for tp in (tp for tp in parts if tp.topic == name):
            done = committed.get(tp)
            start = done.offset if done is not None and done.offset >= 0 else earliest[tp].offset
            lags[tp.partition] = max(latest[tp].offset - start, 0)
        groups.append(
            {"service": service, "group": group, "topic": name, "lag": sum(lags.values()), "partitions": lags}
        )
    dead_topics = {dlq(settings.topic(t)) for t in TOPICS}
    dead = {t["name"]: t["messages"] for t in topics if t["name"] in dead_topics}
    return {
        "topics": topics,
        "consumer_groups": groups,
        "dead_letters": dead,
        "dead_letter_total": sum(dead.values()),
    }


async def current(stores: Stores) -> dict[str, Any]:
    """A snapshot through the gateway's one admin client (``Stores.with_kafka``)."""
    return await stores.with_kafka(lambda admin: snapshot(admin, stores.settings))
