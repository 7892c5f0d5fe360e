"""Requesting an ingestion run, shared by the CLI, the gateway (``POST /runs``), tests and benchmarks.

A run exists from the moment it is accepted: its row is written with status ``requested`` before
``ingest.requested`` is published, so ``GET /runs/{id}`` answers at once; the ingestor turns it
``running`` when it takes the event. A run whose event no service picks up stays visibly
``requested``. If the event cannot be published, the run is marked ``failed`` with the reason and
the error is raised to the caller. (Airflow's DAG publishes to Kafka itself, without a store of
the platform at hand: its run has no row until the ingestor takes the event, and its client tells
that 404 from ``requested``; see airflow/plugins/bigtech_lake_client.py.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from lake.events import GeneratedSource, IngestRequested, KaggleSource, PathSource
from lake.settings import Settings


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def request_run(
    settings: Settings, request: GeneratedSource | PathSource | KaggleSource, requested_by: str = "cli"
) -> str:
    """Record the run as ``requested``, publish its ``ingest.requested`` event; return its id."""
    from lake.adapters.broker import send_event
    from lake.adapters.run_ledger import RunLedger

    run_id = new_run_id()
    event = IngestRequested(run_id=run_id, request=request, requested_by=requested_by)
    repo = RunLedger(settings.mysql)
    try:
        repo.record_requested(run_id, request.model_dump(mode="json"), requested_by)
        try:
            send_event(settings, event)
        except Exception as exc:
            repo.fail_run(run_id, f"the ingest.requested event could not be published to Kafka: {exc}")
            raise
    finally:
        repo.close()
    return run_id
