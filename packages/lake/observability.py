"""Structured logs (one JSON object per line, with run_id / chunk_id when known) and Prometheus metrics."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server

log_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

RECORDS = Counter("lake_records_total", "Records handled, by service and outcome", ["service", "outcome"])
EVENTS = Counter("lake_events_total", "Events consumed, by service and outcome", ["service", "outcome"])
STORE_WAITS = Counter(
    "lake_store_waits_total",
    "Back-off steps taken because a store was unavailable, by service and store",
    ["service", "store"],
)
CHUNK_SECONDS = Histogram(
    "lake_chunk_seconds",
    "Time to process one chunk event",
    ["service"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80),
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            **log_context.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class LibraryQuiet(logging.Filter):
    """At most one record per library logger and level every ``every_s`` seconds; the next one
    says how many were left out. While Kafka is down, kafka-python logs each reconnect and
    metadata retry (≈ 100 lines per service in 8 s, measured): the service's own back-off line
    is the one that matters."""

    def __init__(self, prefixes: tuple[str, ...], every_s: float = 10.0) -> None:
        super().__init__()
        self.prefixes, self.every_s = prefixes, every_s
        self.last: dict[tuple[str, int], float] = {}
        self.dropped: dict[tuple[str, int], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefixes):
            return True
        key, now = (record.name, record.levelno), time.monotonic()
        if now - self.last.get(key, -self.every_s) < self.every_s:
            self.dropped[key] = self.dropped.get(key, 0) + 1
            return False
        self.last[key] = now
        if dropped := self.dropped.pop(key, 0):
            record.msg = f"{record.getMessage()} ({dropped} similar lines left out in {self.every_s:.0f} s)"
            record.args = None
        return True


def setup_logging(service: str, level: str | None = None) -> None:
    """JSON lines on stdout at ``level`` (default: ``LAKE_LOG_LEVEL``, else INFO)."""
    level = (level or os.environ.get("LAKE_LOG_LEVEL", "INFO")).upper()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(LibraryQuiet(("kafka.",)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "botocore", "urllib3", "pymongo", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve_metrics(port: int) -> None:
    if port > 0:
        start_http_server(port, addr="127.0.0.1")
