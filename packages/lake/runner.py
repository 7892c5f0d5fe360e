"""The consumer loop every pipeline service runs: validate, handle with retries, dead-letter, commit.

Delivery is at-least-once: the offset is committed only after the handler's writes and the events it
published are acknowledged. Handlers are idempotent, so a replay after a crash changes nothing.
An event that does not validate is dead-lettered at once; one whose handler keeps failing is
dead-lettered after ``max_attempts`` tries with exponential backoff; the loop then moves on.
A store that is unreachable (``lake.faults``) does not spend attempts: the loop waits for it with
bounded back-off, one log line and one ``lake_store_waits_total`` count per step, for up to
``store_wait_s``, then dead-letters the event with an error naming the store.
"""

from __future__ import annotations

import base64
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from lake.adapters.broker import Publisher
from lake.adapters.dead_letters import DeadLetterStore
from lake.events import ChunkEvent, DeadLettered, Event, dlq, parse
from lake.faults import unavailable_store
from lake.observability import CHUNK_SECONDS, EVENTS, STORE_WAITS, log_context
from lake.settings import Settings

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """Retrying cannot help (bad input, checksum mismatch): dead-letter at once."""


class StoreUnavailable(Exception):
    """A store stayed unavailable longer than LAKE_KAFKA_STORE_WAIT_S: the event is dead-lettered
    with this error, which names the store (redrive it once the store is back)."""


def backoff_delay(settings: Settings, step: int) -> float:
    """The wait before retry ``step`` (1, 2, …): doubling from LAKE_KAFKA_RETRY_BACKOFF_S, at most
    LAKE_KAFKA_RETRY_BACKOFF_MAX_S."""
    kafka = settings.kafka
    return float(min(kafka.retry_backoff_max_s, kafka.retry_backoff_s * 2 ** min(step - 1, 30)))


def when_stores_answer(
    service: str,
    settings: Settings,
    what: str,
    make: Callable[[], T],
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``make()``, waited for like the loop waits: while it fails because a store is unreachable,
    one line and one ``lake_store_waits_total`` count per back-off step, up to
    LAKE_KAFKA_STORE_WAIT_S of wall-clock time since it first failed, the attempts made meanwhile
    included (as the consumer loop counts it: an attempt can take seconds to fail); any other
    error, or a store still down after that, is raised."""
    failed_at: float | None = None
    step = 0
    while True:
        try:
            return make()
        except Exception as exc:
            store = unavailable_store(exc)
            now = clock()
            failed_at = now if failed_at is None else failed_at
            waited = now - failed_at
            if store is None or waited >= settings.kafka.store_wait_s:
                raise
            step += 1
            delay = min(backoff_delay(settings, step), settings.kafka.store_wait_s - waited)
            log.warning(
                "%s unavailable while %s (%s); waiting %.1f s before trying again (%.0f of %.0f s waited)",
                store,
                what,
                type(exc).__name__,
                delay,
                waited,
                settings.kafka.store_wait_s,
            )
            STORE_WAITS.labels(service, store).inc()
            time.sleep(delay)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


E = TypeVar("E", bound=Event)
T = TypeVar("T")


@dataclass(frozen=True)
class Wiring(Generic[E]):
    """What a service's composition root (its ``build()``) hands to the consumer loop: the event
    type it consumes (its topic is the type's), the handler of one such event, and what to do when
    one is dead-lettered (``None`` for an event that did not even validate)."""

    event_type: type[E]
    handle: Callable[[E], None]
    # (the event, its error, the letter's id in MySQL: None when it could not be recorded there)
    on_dead_letter: Callable[[E | None, str, str | None], None] | None = None
    # what the handler holds beyond the stores' clients (a thread), released when the loop ends
    close: Callable[[], None] | None = None


STOPPING_UNFINISHED = "stopping with the event unfinished: it is redelivered after restart"
POLL_RETRY_S = 1.0  # the pause before polling again when Kafka did not answer


@dataclass
class _Tries:
    """One event's attempts so far (store waits do not count), store waits, and when (the loop's
    clock) a store first failed it: the wait budget runs from there."""

    attempts: int = 0
    waits: int = 0
    store_failed_at: float | None = None


class ConsumerLoop(Generic[E]):
    def __init__(
        self,
        service: str,
        settings: Settings,
        consumer: KafkaConsumer,
        publisher: Publisher,
        wiring: Wiring[E],
        letters: DeadLetterStore | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.consumer = consumer
        self.publisher = publisher
        self.wiring = wiring
        self.letters = letters
        self.stopping = threading.Event()

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: finishing the current event, then stopping", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self) -> None:
        log.info("consuming", extra={"fields": {"topics": sorted(self.consumer.subscription() or [])}})
        try:
            while not self.stopping.is_set():
                batches = self._poll()
                for tp, messages in batches.items():
                    for msg in messages:
                        self._process(tp, msg)
                        if self.stopping.is_set():
                            break
                    if self.stopping.is_set():
                        break
        finally:
            try:
                self.publisher.flush()
            except Exception:  # offsets of undelivered work were not committed: it is redone
                log.exception("events not delivered at shutdown")
            self.consumer.close()
            self.publisher.close()
            log.info("stopped")

    def _poll(self) -> dict[TopicPartition, list[Any]]:
        """The next messages, or none while Kafka does not answer (the broker is down or
        restarting): the consumer reconnects and rejoins its group on a later poll, and the
        service goes on instead of exiting (tests/e2e/test_faults.py)."""
        try:
            batches: dict[TopicPartition, list[Any]] = self.consumer.poll(timeout_ms=500)
        except KafkaError as exc:
            log.warning("Kafka did not answer a poll (%s): polling again", describe(exc))
            self._wait(POLL_RETRY_S)
            return {}
        return batches

    def _process(self, tp: TopicPartition, msg: Any) -> None:
        token = log_context.set({"topic": msg.topic, "partition": msg.partition, "offset": msg.offset})
        started = time.perf_counter()
        try:
            event = self._parse(msg)
            if event is None:
                return
            ctx: dict[str, Any] = {"run_id": event.run_id}
            if isinstance(event, ChunkEvent):
                ctx["chunk_id"] = event.chunk_id
            log_context.set({**log_context.get(), **ctx})
            if self._handle_until_done(msg, event):
                self._commit(msg)
        finally:
            CHUNK_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            log_context.reset(token)

    def _parse(self, msg: Any) -> E | None:
        """The message's event, or None once a message that is no event of ours is dead-lettered."""
        try:
            parsed = parse(msg.topic, msg.value, self.settings.kafka.topic_prefix)
            if not isinstance(parsed, self.wiring.event_type):  # a misrouted topic
                raise ValueError(
                    f"{type(parsed).__name__} on {msg.topic}: {self.service} consumes"
                    f" {self.wiring.event_type.__name__}"
                )
        except (ValidationError, ValueError, KeyError) as exc:
            self._dead_letter(msg, None, exc, attempts=1)
            return None
        event: E = parsed
        return event

    def _handle_until_done(self, msg: Any, event: E) -> bool:
        """Handle the event, retrying; True once it is handled and its outputs flushed (its offset
        may be committed), False when it was dead-lettered (offset committed there) or the loop is
        stopping (offset left uncommitted on purpose: the event is redelivered after restart)."""
        tries = _Tries()
        while True:
            tries.attempts += 1
            try:
                self.wiring.handle(event)
                self.publisher.flush()
                EVENTS.labels(self.service, "ok").inc()
                return True
            except PermanentError as exc:
                self._dead_letter(msg, event, exc, tries.attempts)
                return False
            except Exception as exc:
                if self.stopping.is_set():
                    log.warning(STOPPING_UNFINISHED)
                    return False
                delay = self._retry_delay(msg, event, exc, tries)
                if delay is None:
                    return False
                EVENTS.labels(self.service, "retry").inc()
                self._wait(delay)
                if self.stopping.is_set():
                    log.warning(STOPPING_UNFINISHED)
                    return False

    def _retry_delay(self, msg: Any, event: E, exc: Exception, tries: _Tries) -> float | None:
        """Seconds to wait before the next attempt, or None once the event was dead-lettered.

        A store that does not answer is waited for (not the event's fault: the attempt does not
        count) up to ``store_wait_s``; MySQL holds the dead letters and the run ledger, so a letter
        written while it is down could never be listed or redriven: MySQL is waited for without
        that limit. The budget is wall-clock time since the store first failed the event, the
        attempts made meanwhile included: an attempt can take seconds to fail (a driver's server
        selection), and counting the back-off alone let a store stay down far longer than the
        budget says without a letter. Any other error counts an attempt, up to ``max_attempts``."""
        kafka = self.settings.kafka
        store = unavailable_store(exc)
        if store is None:
            if tries.attempts >= kafka.max_attempts:
                self._dead_letter(msg, event, exc, tries.attempts)
                return None
            delay = self._delay(tries.attempts)
            log.warning("attempt %d failed: %s; retrying in %.1f s", tries.attempts, describe(exc), delay)
            return delay
        tries.attempts -= 1
        now = self._clock()
        if tries.store_failed_at is None:
            tries.store_failed_at = now
        waited = now - tries.store_failed_at
        if waited >= kafka.store_wait_s and store != "mysql":
            gone = StoreUnavailable(f"{store} unavailable for {waited:.0f} s: {describe(exc)}")
            self._dead_letter(msg, event, gone, tries.attempts + 1)
            return None
        tries.waits += 1
        delay = self._delay(tries.waits)
        if store != "mysql":
            delay = min(delay, kafka.store_wait_s - waited)
        log.warning(
            "%s unavailable (%s); waiting %.1f s before trying again (%.0f of %.0f s waited)",
            store,
            type(exc).__name__,
            delay,
            waited,
            kafka.store_wait_s,
        )
        STORE_WAITS.labels(self.service, store).inc()
        return delay

    def _delay(self, step: int) -> float:
        return backoff_delay(self.settings, step)

    @staticmethod
    def _clock() -> float:
        return time.monotonic()

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake within 0.2 s of a stop signal (the event is then left for redelivery).
        Slices of ``time.sleep``, not ``Event.wait``: the signal handler sets the event on this same
        thread, and ``Event.set`` would block on the lock ``Event.wait`` holds at that moment."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))

    def _commit(self, msg: Any) -> None:
        """Commit past ``msg``. If its partition was reassigned meanwhile (a wait longer than the
        poll interval), the new owner redoes the event (handlers are idempotent): log, go on."""
        try:
            self.consumer.commit(
                {TopicPartition(msg.topic, msg.partition): OffsetAndMetadata(msg.offset + 1, "", -1)}
            )
        except CommitFailedError as exc:
            log.warning("offset not committed, the partition moved to another consumer: %s", exc)
        except KafkaError as exc:  # the broker is down or restarting (tests/e2e/test_faults.py)
            # the event is done and its outputs flushed; a later commit covers this offset, and a
            # crash before one redelivers the event, which the idempotent handlers absorb
            log.warning(
                "offset not committed, Kafka did not answer (%s): a later commit covers it", describe(exc)
            )

    def _dead_letter(self, msg: Any, event: E | None, exc: BaseException, attempts: int) -> None:
        error = describe(exc)
        log.error("dead-lettering event after %d attempt(s): %s", attempts, error)
        EVENTS.labels(self.service, "dead_lettered").inc()
        letter = DeadLettered(
            source_topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=None if msg.key is None else msg.key.decode("utf-8", "replace"),
            value=msg.value.decode("utf-8", "replace"),
            value_base64=base64.b64encode(msg.value).decode(),
            error=error[:4000],
            error_type=type(exc).__name__,
            attempts=attempts,
            service=self.service,
            run_id=None if event is None else event.run_id,
        )
        self.publisher.publish_raw(dlq(msg.topic), letter.key, letter.model_dump_json().encode())
        self.publisher.flush()
        recorded: str | None = None
        if self.letters is not None:  # the operators' list (GET /dead-letters); the topic keeps it anyway
            try:
                recorded = self.letters.record(
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    service=self.service,
                    run_id=letter.run_id,
                    chunk_id=event.chunk_id if isinstance(event, ChunkEvent) else None,
                    error_type=letter.error_type,
                    error=letter.error,
                    attempts=attempts,
                    key=msg.key,
                    value=msg.value,
                    headers=list(msg.headers or []),
                    at=letter.dead_lettered_at.replace(tzinfo=None),
                )
            except Exception:
                log.exception("could not record the dead letter in MySQL; it is on %s", dlq(msg.topic))
        if self.wiring.on_dead_letter is not None:
            try:
                self.wiring.on_dead_letter(event, error, recorded)
            except Exception:
                log.exception("could not record the dead letter on the run")
        self._commit(msg)
