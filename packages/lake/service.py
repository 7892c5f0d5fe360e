"""What every pipeline service's composition root shares: logging, metrics, the consumer loop."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

from lake.adapters.broker import Publisher, make_consumer, make_producer
from lake.adapters.dead_letters import DeadLetterStore
from lake.adapters.staging_repo import StagingRepository
from lake.events import Event
from lake.observability import serve_metrics, setup_logging
from lake.runner import ConsumerLoop, OnDeadLetter
from lake.settings import Settings, get_settings

log = logging.getLogger(__name__)


def run_service(
    service: str,
    topic: str,
    build: Callable[[Settings, Publisher], tuple[Callable[[Event], None], OnDeadLetter | None]],
) -> None:
    settings = get_settings()
    setup_logging(service, os.environ.get("LAKE_LOG_LEVEL", "INFO"))
    serve_metrics(int(os.environ.get("LAKE_METRICS_PORT", "0")))
    client_id = f"{service}-{socket.gethostname()}-{os.getpid()}"
    publisher = Publisher(make_producer(settings, client_id), settings)
    handler, on_dead_letter = build(settings, publisher)
    consumer = make_consumer(settings, settings.topic(topic), settings.group(service), client_id)
    letters = DeadLetterStore(StagingRepository(settings.mysql))
    loop = ConsumerLoop(service, settings, consumer, publisher, handler, on_dead_letter, letters=letters)
    loop.install_signal_handlers()
    log.info("started", extra={"fields": {"group": settings.group(service), "topic": settings.topic(topic)}})
    loop.run()
