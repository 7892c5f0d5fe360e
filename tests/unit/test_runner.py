"""The consumer loop (lake.runner) without servers: retries with back-off, max attempts → dead
letter with the original message, offsets committed only once an event is done, a stop during a
retry leaving the event for redelivery, and the loop moving on after a dead letter.

The consumer is an in-memory stand-in for kafka-python's (the loop's only contact with Kafka
here); the real broker path is covered end to end (tests/e2e)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from lake.adapters.broker import Publisher
from lake.events import Event, IngestRequested
from lake.runner import ConsumerLoop, PermanentError, Wiring
from lake.settings import Settings
from tests.fakes import CollectingPublisher

TOPIC = "ingest.requested"


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Consumer:
    """Hands out its messages one poll at a time, records commits; stops the loop when empty."""

    def __init__(self, values: list[bytes], harness: Harness) -> None:
        self.messages = [Message(TOPIC, 0, i, b"k", v) for i, v in enumerate(values)]
        self.commits: list[int] = []
        self.harness = harness
        self.closed = False

    def subscription(self) -> set[str]:
        return {TOPIC}

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Message]]:
        if not self.messages:
            self.harness.loop.stopping.set()
            return {}
        return {TopicPartition(TOPIC, 0): [self.messages.pop(0)]}

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits += [o.offset for o in offsets.values()]

    def close(self) -> None:
        self.closed = True


def event(n: int) -> IngestRequested:
    return IngestRequested.model_validate(
        {"run_id": f"run-{n}", "request": {"source": "generated", "rows": 10}}
    )


class Harness:
    """A loop over ``values`` with a collecting publisher, its back-off sleeps recorded."""

    def __init__(
        self,
        values: list[bytes],
        monkeypatch: pytest.MonkeyPatch,
        max_attempts: int = 3,
        consumes: type[Event] = IngestRequested,
    ) -> None:
        self.sleeps: list[float] = []
        monkeypatch.setattr("lake.runner.time.sleep", self.sleeps.append)
        settings = Settings()
        kafka = settings.kafka.model_copy(update={"max_attempts": max_attempts, "topic_prefix": ""})
        self.consumer = Consumer(values, self)
        self.pub = CollectingPublisher()
        self.failed: list[tuple[Event | None, str]] = []
        self.handler: Any = None
        self.loop = ConsumerLoop(
            "tester",
            settings.model_copy(update={"kafka": kafka}),
            cast(KafkaConsumer, self.consumer),
            cast(Publisher, self.pub),
            Wiring(consumes, lambda e: self.handler(e), lambda e, err: self.failed.append((e, err))),
            backoff_s=0.25,
        )

    def run(self, handler: Any) -> Harness:
        self.handler = handler
        self.loop.run()
        assert self.consumer.closed
        return self


def dead_letters(pub: CollectingPublisher) -> list[dict[str, Any]]:
    assert all(topic == f"{TOPIC}.dlq" for topic, _, _ in pub.raw)
    return [json.loads(value) for _, _, value in pub.raw]


def test_transient_failures_are_retried_with_doubling_back_off_then_committed(monkeypatch):
    h = Harness([event(1).dumps()], monkeypatch)
    commits_seen: list[list[int]] = []

    def handler(e: Event) -> None:
        commits_seen.append(list(h.consumer.commits))
        if len(commits_seen) < 3:
            raise OSError("the store blinked")

    h.run(handler)
    assert h.sleeps == [0.25, 0.5] and len(commits_seen) == 3
    assert commits_seen == [[], [], []]  # nothing committed while the event is not done
    assert h.consumer.commits == [1] and h.pub.raw == [] and h.failed == []


def test_after_max_attempts_the_event_is_dead_lettered_byte_for_byte_and_the_loop_moves_on(monkeypatch):
    first = event(1).dumps()
    h = Harness([first, event(2).dumps()], monkeypatch)
    done: list[str] = []

    def handler(e: Event) -> None:
        if e.run_id == "run-1":
            raise OSError("still down")
        done.append(e.run_id)

    h.run(handler)
    [letter] = dead_letters(h.pub)
    assert (letter["attempts"], letter["run_id"], letter["service"]) == (3, "run-1", "tester")
    assert letter["error"] == "OSError: still down" and letter["source_topic"] == TOPIC
    assert base64.b64decode(letter["value_base64"]) == first
    assert h.sleeps == [0.25, 0.5]
    assert [(e.run_id if e else None, err) for e, err in h.failed] == [("run-1", "OSError: still down")]
    assert h.consumer.commits == [1, 2] and done == ["run-2"]


def test_a_permanent_error_is_dead_lettered_at_once(monkeypatch):
    def handler(e: Event) -> None:
        raise PermanentError("no CSV file")

    h = Harness([event(1).dumps()], monkeypatch).run(handler)
    [letter] = dead_letters(h.pub)
    assert letter["attempts"] == 1 and h.sleeps == [] and h.consumer.commits == [1]


def test_an_invalid_message_is_dead_lettered_with_its_exact_bytes(monkeypatch):
    raw = b'{"run_id": 7, "oops": "\xff"}'  # not an event, not even UTF-8

    def handler(e: Event) -> None:
        raise AssertionError("never called")

    h = Harness([raw], monkeypatch).run(handler)
    [letter] = dead_letters(h.pub)
    assert base64.b64decode(letter["value_base64"]) == raw  # lossless, where `value` is not
    assert letter["value"].encode() != raw and letter["run_id"] is None
    assert h.failed == [(None, letter["error"])] and h.consumer.commits == [1] and h.sleeps == []


def test_a_stop_during_a_retry_leaves_the_event_uncommitted_for_redelivery(monkeypatch):
    h = Harness([event(1).dumps(), event(2).dumps()], monkeypatch)

    def handler(e: Event) -> None:
        h.loop.stopping.set()  # SIGTERM arrives while the event fails
        raise OSError("down")

    h.run(handler)
    assert h.consumer.commits == [] and h.pub.raw == [] and h.failed == [] and h.sleeps == []
    assert [m.offset for m in h.consumer.messages] == [1]  # the next event was never taken


def test_an_event_of_another_type_than_the_service_consumes_is_dead_lettered_at_once(monkeypatch):
    """A misrouted topic (the handler is typed on its own event): no handler call, no retry."""
    from lake.events import RawChunkReady

    h = Harness([event(1).dumps()], monkeypatch, consumes=RawChunkReady)
    calls: list[Event] = []
    h.run(calls.append)
    [letter] = dead_letters(h.pub)
    assert calls == [] and h.sleeps == [] and letter["attempts"] == 1
    assert letter["error"] == "ValueError: IngestRequested on ingest.requested: tester consumes RawChunkReady"
    assert h.failed and h.failed[0][0] is None and h.consumer.commits == [1]
