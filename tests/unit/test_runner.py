"""The consumer loop (lake.runner) without servers: retries with back-off, max attempts → dead
letter with the original message, offsets committed only once an event is done, a stop during a
retry leaving the event for redelivery, and the loop moving on after a dead letter.

The consumer is an in-memory stand-in for kafka-python's (the loop's only contact with Kafka
here); the real broker path is covered end to end (tests/e2e)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
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
        **kafka_settings: float,
    ) -> None:
        self.sleeps: list[float] = []
        settings = Settings()
        kafka = settings.kafka.model_copy(
            update={
                "max_attempts": max_attempts,
                "topic_prefix": "",
                "retry_backoff_s": 0.25,
                **kafka_settings,
            }
        )
        self.consumer = Consumer(values, self)
        self.pub = CollectingPublisher()
        self.failed: list[tuple[Event | None, str]] = []
        self.handler: Any = None
        self.loop = ConsumerLoop(
            "tester",
            settings.model_copy(update={"kafka": kafka}),
            cast(KafkaConsumer, self.consumer),
            cast(Publisher, self.pub),
            Wiring(consumes, lambda e: self.handler(e), lambda e, err, _letter: self.failed.append((e, err))),
        )
        self.now = 0.0  # the loop's clock: its waits move it on, and a handler does to take time
        monkeypatch.setattr(self.loop, "_wait", self._wait)
        monkeypatch.setattr(self.loop, "_clock", lambda: self.now)

    def _wait(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

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


def test_an_unavailable_store_is_waited_for_with_bounded_back_off_one_line_per_step(monkeypatch, caplog):
    """Five connection failures of MySQL: five waits (doubling, capped), one warning each naming the
    store and no traceback, counted in lake_store_waits_total; no attempt spent, no dead letter."""
    import pymysql

    from lake.observability import STORE_WAITS

    before = STORE_WAITS.labels("tester", "mysql")._value.get()
    h = Harness([event(1).dumps()], monkeypatch, max_attempts=2, retry_backoff_max_s=2.0)
    calls: list[str] = []

    def handler(e: Event) -> None:
        calls.append(e.run_id)
        if len(calls) <= 5:
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")

    with caplog.at_level("WARNING", logger="lake.runner"):
        h.run(handler)
    assert h.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0] and len(calls) == 6
    assert h.consumer.commits == [1] and h.pub.raw == [] and h.failed == []
    lines = [r for r in caplog.records if r.name == "lake.runner"]
    assert len(lines) == 5 and all(r.exc_info is None for r in lines)
    assert lines[0].getMessage() == (
        "mysql unavailable (OperationalError); waiting 0.2 s before trying again (0 of 600 s waited)"
    )
    assert STORE_WAITS.labels("tester", "mysql")._value.get() - before == 5


def test_a_store_down_longer_than_the_wait_budget_dead_letters_the_event_naming_the_store(monkeypatch):
    import pymongo.errors

    h = Harness([event(1).dumps()], monkeypatch, store_wait_s=1.0)

    def handler(e: Event) -> None:
        raise pymongo.errors.AutoReconnect("connection refused")

    h.run(handler)
    assert h.sleeps == [0.25, 0.5, 0.25]  # the last wait ends at the budget
    [letter] = dead_letters(h.pub)
    assert (
        letter["error"] == "StoreUnavailable: mongodb unavailable for 1 s: AutoReconnect: connection refused"
    )
    assert letter["attempts"] == 1 and h.consumer.commits == [1]


def test_the_wait_budget_counts_the_time_failing_attempts_take(monkeypatch):
    """An attempt can take long to fail (a driver's server selection): the budget is the time since
    the store first failed, attempts included, not the back-off alone."""
    import pymongo.errors

    h = Harness([event(1).dumps()], monkeypatch, store_wait_s=1.0)

    def handler(e: Event) -> None:
        h.now += 0.6  # each attempt takes 0.6 s to fail
        raise pymongo.errors.ServerSelectionTimeoutError("no server")

    h.run(handler)
    # first failure; 0.25 s back-off; 0.6 s attempt (0.85 s); the rest of the budget (0.15 s); a
    # last 0.6 s attempt: 1.6 s since the first failure, over the budget
    assert h.sleeps == pytest.approx([0.25, 0.15])
    [letter] = dead_letters(h.pub)
    assert letter["error"].startswith("StoreUnavailable: mongodb unavailable for 2 s: ServerSelection")


def test_which_store_an_error_says_is_unavailable():
    import asyncmy.errors
    import botocore.exceptions
    import kafka.errors
    import pymongo.errors
    import pymysql

    from lake.faults import unavailable_store

    def caused(outer: Exception, inner: Exception) -> Exception:
        try:
            try:
                raise inner
            except Exception as exc:
                raise outer from exc
        except Exception as exc:
            return exc

    assert unavailable_store(pymysql.err.OperationalError(2013, "Lost connection")) == "mysql"
    assert (
        unavailable_store(caused(RuntimeError("load failed"), pymysql.err.InterfaceError(0, ""))) == "mysql"
    )
    assert unavailable_store(pymysql.err.OperationalError(1213, "Deadlock found")) is None  # the work's
    assert unavailable_store(pymongo.errors.ServerSelectionTimeoutError("no server")) == "mongodb"
    assert unavailable_store(pymongo.errors.DuplicateKeyError("dup")) is None
    assert unavailable_store(botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3")) == "s3"
    assert unavailable_store(kafka.errors.KafkaTimeoutError("flush")) == "kafka"
    assert unavailable_store(OSError("disk")) is None
    # the gateway's driver (asyncmy) the same way
    assert unavailable_store(asyncmy.errors.OperationalError(2003, "Can't connect")) == "mysql"
    assert unavailable_store(asyncmy.errors.InterfaceError(0, "closed")) == "mysql"
    assert unavailable_store(asyncmy.errors.OperationalError(1969, "max_statement_time")) is None


def test_a_statement_stopped_at_its_time_limit_is_told_apart_from_a_store_that_is_down():
    import asyncmy.errors
    import pymongo.errors
    import pymysql

    from lake.faults import ran_too_long, unavailable_store

    for exc in (
        asyncmy.errors.InternalError(1969, "Query execution was interrupted (max_statement_time exceeded)"),
        asyncmy.errors.OperationalError(3024, "maximum statement execution time exceeded"),
        pymysql.err.OperationalError(3024, "maximum statement execution time exceeded"),
        pymongo.errors.ExecutionTimeout("operation exceeded time limit"),
    ):
        assert ran_too_long(exc) and unavailable_store(exc) is None, exc
    wrapped = RuntimeError("page failed")
    wrapped.__cause__ = asyncmy.errors.InternalError(1969, "interrupted")
    assert ran_too_long(wrapped)
    assert not ran_too_long(asyncmy.errors.OperationalError(2013, "Lost connection"))
    assert not ran_too_long(pymongo.errors.ServerSelectionTimeoutError("no server"))


def test_library_warnings_are_kept_to_one_line_per_logger_and_level_every_ten_seconds(monkeypatch):
    import logging

    from lake.observability import LibraryQuiet

    now = [100.0]
    monkeypatch.setattr("lake.observability.time.monotonic", lambda: now[0])
    quiet = LibraryQuiet(("kafka.",))

    def record(name: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "Connection failed: %s", ("ECONNREFUSED",), None)

    kept = []
    for step in range(25):  # 25 errors 0.5 s apart: 12.5 s
        now[0] = 100.0 + step * 0.5
        r = record("kafka.net.manager")
        if quiet.filter(r):
            kept.append(r.getMessage())
    assert kept == [
        "Connection failed: ECONNREFUSED",
        "Connection failed: ECONNREFUSED (19 similar lines left out in 10 s)",
    ]
    assert quiet.filter(record("kafka.cluster"))  # another logger has its own allowance
    assert quiet.filter(record("kafka.net.manager", logging.INFO))  # below WARNING: untouched
    assert all(quiet.filter(record("lake.runner")) for _ in range(3))  # our own lines: untouched


def test_a_service_started_while_a_store_is_down_waits_for_it_and_other_errors_are_raised(monkeypatch):
    import pymongo.errors

    from lake.runner import when_stores_answer

    now = [0.0]  # a clock that the sleeps (and slow attempts) move on
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("lake.runner.time.sleep", sleep)
    settings = Settings()
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"retry_backoff_s": 0.25, "store_wait_s": 1.0})}
    )
    tries: list[int] = []

    def make() -> int:
        tries.append(1)
        if len(tries) < 3:
            raise pymongo.errors.ServerSelectionTimeoutError("connection refused")
        return 7

    def answer(make: Callable[[], int]) -> int:
        return when_stores_answer("tester", settings, "starting", make, clock=lambda: now[0])

    assert answer(make) == 7 and sleeps == [0.25, 0.5]

    def broken() -> int:
        raise ValueError("a bad setting")

    with pytest.raises(ValueError):
        answer(broken)

    def down() -> int:
        raise pymongo.errors.AutoReconnect("refused")

    sleeps.clear()
    with pytest.raises(pymongo.errors.AutoReconnect):  # still down after the budget: raised
        answer(down)
    assert sleeps == [0.25, 0.5, 0.25]

    def slow_down() -> int:  # each attempt takes 0.6 s to fail (a driver's server selection)
        now[0] += 0.6
        raise pymongo.errors.ServerSelectionTimeoutError("no server")

    sleeps.clear()
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        answer(slow_down)
    # the budget counts the attempts after the first failure too: 0.25 s, then 0.6 s of an
    # attempt, then only the 0.15 s left; counting the sleeps alone waited 0.25 + 0.5 + 0.25 s
    # through four attempts (2.4 s of them), far past the 1 s budget
    assert sleeps == [0.25, pytest.approx(0.15)]


def test_mysql_is_waited_for_past_the_budget_since_its_dead_letters_could_not_be_recorded(monkeypatch):
    import pymysql

    h = Harness([event(1).dumps()], monkeypatch, store_wait_s=1.0)
    calls: list[int] = []

    def handler(e: Event) -> None:
        calls.append(1)
        if len(calls) <= 5:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")

    h.run(handler)
    assert h.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0]  # past the 1 s budget, not cut at it
    assert h.pub.raw == [] and h.failed == [] and h.consumer.commits == [1]


def test_a_commit_refused_after_a_rebalance_is_logged_and_the_loop_goes_on(monkeypatch, caplog):
    from kafka.errors import CommitFailedError

    h = Harness([event(1).dumps(), event(2).dumps()], monkeypatch)

    def refuse(offsets: Any) -> None:
        raise CommitFailedError("the group rebalanced")

    monkeypatch.setattr(h.consumer, "commit", refuse)
    done: list[str] = []
    with caplog.at_level("WARNING", logger="lake.runner"):
        h.run(lambda e: done.append(e.run_id))
    assert done == ["run-1", "run-2"]
    assert sum("partition moved to another consumer" in r.getMessage() for r in caplog.records) == 2


def test_a_commit_kafka_does_not_answer_is_logged_and_the_loop_goes_on(monkeypatch, caplog):
    # Kafka SIGKILLed mid-run: the commit's coordinator lookup is refused; the service must not exit
    from kafka.errors import KafkaConnectionError

    h = Harness([event(1).dumps(), event(2).dumps()], monkeypatch)
    commits: list[Any] = []

    def refuse_once(offsets: Any) -> None:
        if not commits:
            commits.append(None)
            raise KafkaConnectionError("111 ECONNREFUSED")
        commits.append(offsets)

    monkeypatch.setattr(h.consumer, "commit", refuse_once)
    done: list[str] = []
    with caplog.at_level("WARNING", logger="lake.runner"):
        h.run(lambda e: done.append(e.run_id))
    assert done == ["run-1", "run-2"]
    assert [o for o in commits if o is not None] == [
        {TopicPartition(TOPIC, 0): OffsetAndMetadata(2, "", -1)}
    ]  # the second event's commit covers the first's
    assert sum("Kafka did not answer" in r.getMessage() for r in caplog.records) == 1


def test_a_poll_kafka_does_not_answer_is_logged_and_the_loop_goes_on(monkeypatch, caplog):
    # Kafka SIGKILLed mid-run: the consumer's coordinator lookup inside poll is refused (CI saw
    # the ingestor exit on it); the service waits, polls again and handles what comes next
    from kafka.errors import KafkaConnectionError

    from lake.runner import POLL_RETRY_S

    h = Harness([event(1).dumps()], monkeypatch)
    real_poll = h.consumer.poll
    refused: list[int] = []

    def refuse_twice(timeout_ms: int) -> dict[TopicPartition, list[Message]]:
        if len(refused) < 2:
            refused.append(timeout_ms)
            raise KafkaConnectionError("111 ECONNREFUSED")
        return real_poll(timeout_ms)

    monkeypatch.setattr(h.consumer, "poll", refuse_twice)
    done: list[str] = []
    with caplog.at_level("WARNING", logger="lake.runner"):
        h.run(lambda e: done.append(e.run_id))
    assert done == ["run-1"]
    assert h.sleeps == [POLL_RETRY_S, POLL_RETRY_S]
    assert sum("Kafka did not answer a poll" in r.getMessage() for r in caplog.records) == 2
