"""What every pipeline service's composition root shares: logging, metrics, the consumer loop."""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import Callable

from lake.adapters.broker import Publisher, make_consumer, make_producer
from lake.adapters.dead_letters import DeadLetterStore
from lake.adapters.mysql import Session
from lake.observability import serve_metrics, setup_logging
from lake.runner import ConsumerLoop, E, Wiring, when_stores_answer
from lake.settings import Settings, get_settings

log = logging.getLogger(__name__)


def run_service(service: str, build: Callable[[Settings, Publisher], Wiring[E]]) -> None:
    """Run ``service``: ``build`` wires its handler (the composition root's one function); the
    loop consumes the topic of the handler's event type."""
    settings = get_settings()
    setup_logging(service)
    serve_metrics(int(os.environ.get("LAKE_METRICS_PORT", "0")))
    client_id = f"{service}-{socket.gethostname()}-{os.getpid()}"
    # started while a store is down (a restart of the whole stack, a fault): wait for it, don't exit
    producer = when_stores_answer(service, settings, "starting", lambda: make_producer(settings, client_id))
    publisher = Publisher(producer, settings)
    wiring = when_stores_answer(service, settings, "starting", lambda: build(settings, publisher))
    topic = wiring.event_type.topic
    consumer = when_stores_answer(
        service,
        settings,
        "starting",
        lambda: make_consumer(settings, settings.topic(topic), settings.group(service), client_id),
    )
    letters = DeadLetterStore(Session(settings.mysql))
    loop = ConsumerLoop(service, settings, consumer, publisher, wiring, letters=letters)
    loop.install_signal_handlers()
    # What exists now (modules, the tokenizer, clients) lives as long as the process: frozen, the
    # collector's full passes skip it. They ran ≈ 90 times per curator in a 1.13M run at 100-270 ms
    # of CPU each, most of it walking these objects (docs/benchmarks.md)
    gc.collect()
    gc.freeze()
    log.info("started", extra={"fields": {"group": settings.group(service), "topic": settings.topic(topic)}})
    try:
        loop.run()
    finally:
        if wiring.close is not None:
            try:
                wiring.close()
            except Exception:  # the loop's own error, if any, is the one that matters
                log.exception("releasing the handler's resources failed")
