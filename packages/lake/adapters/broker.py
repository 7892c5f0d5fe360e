"""Kafka through kafka-python: topic bootstrap, a producer of events, consumer construction."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError
from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

from lake.events import TOPICS, Event, dlq
from lake.settings import Settings

log = logging.getLogger(__name__)


def all_topics(settings: Settings) -> list[str]:
    names = [settings.topic(t) for t in TOPICS]
    return names + [dlq(n) for n in names]


def admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap, client_id="lake-admin", request_timeout_ms=10_000
    )


def ensure_topics(settings: Settings) -> list[str]:
    """Create every topic and dead-letter topic that does not exist yet, and give every existing one
    that has fewer than ``LAKE_KAFKA_PARTITIONS`` partitions the missing ones (a partition count is
    never lowered); return the topics created or grown."""
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        wanted = [t for t in all_topics(settings) if t not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent bootstrap created them
                client.create_topics(
                    {
                        t: {
                            "num_partitions": settings.kafka.partitions,
                            "replication_factor": settings.kafka.replication_factor,
                        }
                        for t in wanted
                    },
                    wait_for_metadata=True,
                )
        kept = [t for t in all_topics(settings) if t in existing]
        grow = {
            d["name"]: settings.kafka.partitions
            for d in (client.describe_topics(kept) if kept else [])
            if len(d.get("partitions") or ()) < settings.kafka.partitions
        }
        if grow:  # per topic: a topic grown meanwhile (by another bootstrap) answers an error, skipped
            answer = client.create_partitions(grow, raise_errors=False)
            wanted += sorted(r.name for r in answer.results if r.error_code == 0)
        return wanted
    finally:
        client.close()


def chunk_partition(key: bytes, partitions: int) -> int:
    """Partition of a ``<run_id>:<chunk_id>`` key: a run starts on the partition its id hashes to and
    its chunks then go round-robin, so N consecutive chunks cover N partitions exactly (hashing each key
    would leave some partitions, and so some replicas, idle on short runs). Replays of a chunk land on
    the same partition. Other keys hash like Kafka's default (murmur2)."""
    run_id, sep, chunk = key.rpartition(b":")
    if sep and chunk.isdigit():
        return ((int(murmur2(run_id)) & 0x7FFFFFFF) + int(chunk)) % partitions
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


class ChunkPartitioner(DefaultPartitioner):  # type: ignore[misc]  # kafka-python is untyped
    """kafka-python partitioner applying :func:`chunk_partition`."""

    def partition(
        self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        all_partitions = sorted(cluster.partitions_for_topic(topic) or ())
        if not all_partitions:
            raise ValueError(f"topic {topic} not found in the cluster metadata")
        return int(all_partitions[chunk_partition(serialized_key, len(all_partitions))])


def make_producer(settings: Settings, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap,
        client_id=client_id,
        partitioner=ChunkPartitioner(),
        acks="all",
        linger_ms=5,
        retries=5,
        max_in_flight_requests_per_connection=1,
    )


def make_consumer(settings: Settings, topic: str, group: str, client_id: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
        max_poll_interval_ms=900_000,
        session_timeout_ms=15_000,
        heartbeat_interval_ms=3_000,
    )


class DeliveryFailed(RuntimeError):
    """An event sent since the last flush did not reach the broker."""


class Publisher:
    """Publishes events on their topic (with the configured prefix), keyed for partitioning.

    Sends are asynchronous; ``flush`` waits for them and raises ``DeliveryFailed`` when any was not
    acknowledged, so a caller never records or commits on the strength of an event the broker lost."""

    def __init__(self, producer: KafkaProducer, settings: Settings) -> None:
        self.producer = producer
        self.settings = settings
        self._pending: list[Any] = []

    def publish(self, event: Event) -> None:
        self._pending.append(
            self.producer.send(
                self.settings.topic(event.topic), key=event.partition_key().encode(), value=event.dumps()
            )
        )

    def publish_raw(self, topic: str, key: str | None, value: bytes) -> None:
        self._pending.append(
            self.producer.send(topic, key=None if key is None else key.encode(), value=value)
        )

    def publish_bytes(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """A message exactly as given (a redriven dead letter: its original key and value)."""
        self._pending.append(self.producer.send(topic, key=key, value=value, headers=headers))

    def flush(self, timeout: float = 30.0) -> None:
        self.producer.flush(timeout=timeout)
        pending, self._pending = self._pending, []
        lost = [f for f in pending if not f.succeeded()]
        if lost:
            first = lost[0].exception if lost[0].is_done else f"no answer within {timeout:.0f} s"
            cause = lost[0].exception if isinstance(lost[0].exception, BaseException) else None
            # the client's error as the cause: lake.faults then sees a broker that is down
            raise DeliveryFailed(f"{len(lost)} of {len(pending)} events not delivered: {first}") from (
                cause or KafkaTimeoutError(f"no answer within {timeout:.0f} s")
            )

    def close(self) -> None:
        self.producer.close(timeout=5)


def send_event(settings: Settings, event: Event) -> dict[str, Any]:
    """One-shot publish (CLI, gateway, Airflow): returns where the event landed."""
    producer = make_producer(settings, "lake-cli")
    try:
        meta = producer.send(
            settings.topic(event.topic), key=event.partition_key().encode(), value=event.dumps()
        ).get(timeout=30)
        return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}
    finally:
        producer.close(timeout=5)
