"""``Publisher.flush`` raises when an event sent since the last flush was not acknowledged, so no
caller records progress or commits an offset on the strength of a lost event."""

from __future__ import annotations

from typing import Any, cast

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from lake.adapters.broker import DeliveryFailed, Publisher
from lake.events import IngestRequested
from lake.faults import unavailable_store
from lake.settings import Settings


class FakeProducer:
    """Answers each send with a future the test settles."""

    def __init__(self) -> None:
        self.futures: list[Future] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> Future:
        future = Future()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass


def publisher() -> tuple[Publisher, FakeProducer]:
    producer = FakeProducer()
    return Publisher(cast(Any, producer), Settings()), producer


def test_flush_passes_when_every_event_was_acknowledged():
    pub, producer = publisher()
    pub.publish(IngestRequested(run_id="r1", request={"source": "generated"}))
    pub.publish_raw("x.dlq", None, b"{}")
    for f in producer.futures:
        f.success("metadata")
    pub.flush()
    pub.flush()  # nothing pending any more


def test_flush_raises_for_a_failed_or_unanswered_event_and_forgets_them():
    pub, producer = publisher()
    for n in range(3):
        pub.publish(IngestRequested(run_id=f"r{n}", request={"source": "generated"}))
    producer.futures[0].success("metadata")
    producer.futures[1].failure(KafkaTimeoutError("broker gone"))
    # the third is never answered
    with pytest.raises(DeliveryFailed, match=r"2 of 3 events not delivered: .*broker gone") as err:
        pub.flush()
    assert unavailable_store(err.value) == "kafka"  # the client's error is the cause: Kafka is down
    pub.flush()  # reported once: the caller retries the whole unit of work
