"""Fakes live in the tests, never in src. The broker fake collects events instead of sending them;
stores are never faked."""

from __future__ import annotations

from typing import TypeVar

from lake.events import Event

E = TypeVar("E", bound=Event)


class CollectingPublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.raw: list[tuple[str, str | None, bytes]] = []
        self.messages: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.fail_flush: Exception | None = None

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def publish_raw(self, topic: str, key: str | None, value: bytes) -> None:
        self.raw.append((topic, key, value))

    def publish_bytes(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.messages.append((topic, key, value, headers))

    def flush(self, timeout: float = 30.0) -> None:
        if self.fail_flush is not None:  # as the real one does when Kafka did not acknowledge
            self.messages.clear()
            raise self.fail_flush

    def close(self) -> None:
        pass

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]
