"""The little the Airflow DAG needs from the platform (standard library only, so it runs in any
Airflow image): the ``ingest.requested`` event it publishes, the run id rule that makes a DAG run
idempotent, and the gateway's HTTP API to follow a run. Airflow only starts runs and watches them;
the services do the work.

The event's shape is the platform's contract (``lake.events.IngestRequested``); a unit test of the
project parses what ``ingest_message`` builds with that model, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

TERMINAL = {"succeeded", "failed"}
INGEST_REQUESTED = "ingest.requested"
RUN_ID_CHARS = re.compile(r"[^0-9A-Za-z_.:-]")
SOURCES = ("generated", "path", "kaggle")


def ingest_topic() -> str:
    """The topic name, with the same prefix setting as the services (``LAKE_KAFKA_TOPIC_PREFIX``)."""
    return os.environ.get("LAKE_KAFKA_TOPIC_PREFIX", "") + INGEST_REQUESTED


def run_id_for(dag_id: str, logical_date: datetime | None, dag_run_id: str) -> str:
    """One platform run per DAG and logical date: a retry or a re-run of the same date publishes
    the same run id again, which the ingestor ignores once every chunk of it is published. Runs
    without a logical date (manual triggers in Airflow 3) use their DAG run id."""
    if logical_date is not None:
        stamp = logical_date.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
        return f"{dag_id}-{stamp}"[:64]
    return RUN_ID_CHARS.sub("-", f"{dag_id}-{dag_run_id}")[:64]


MAX_ATTEMPTS = 9


def attempt_ids(base: str) -> list[str]:
    """The run ids a logical date may use: ``base``, then ``base-r2`` … ``base-r9``."""
    return [base] + [f"{base}-r{n}" for n in range(2, MAX_ATTEMPTS + 1)]


def run_id_to_request(base: str) -> str:
    """The first of the date's run ids that has not failed: a retry or re-run reuses a run that is
    not found yet (published, not taken), requested, running or succeeded (idempotent), while a date
    whose run failed gets a new run. A failed run that was redriven is ``running`` again, so
    clearing its DAG run after the redrive waits for that run instead of requesting a new one."""
    for run_id in attempt_ids(base):
        if run_report(run_id)["status"] != "failed":
            return run_id
    raise RuntimeError(f"{MAX_ATTEMPTS} runs of {base} failed: look at /runs/{base}-r{MAX_ATTEMPTS}")


def latest_attempt(base: str) -> str:
    """The date's last requested run id (the one a DAG run of that date followed)."""
    latest = base
    for run_id in attempt_ids(base)[1:]:
        if run_report(run_id)["status"] == NOT_FOUND:
            break
        latest = run_id
    return latest


def raise_on_delivery_error(err: Any, msg: Any) -> None:
    """Delivery callback of the Kafka provider's producer: a message the broker did not take fails
    the task (confluent-kafka raises it from ``flush``), instead of only being logged."""
    if err is not None:
        raise RuntimeError(f"ingest.requested not delivered to Kafka: {err}")


def source_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """The ``request`` of the event from the DAG's params; a clear error for a bad combination."""
    kind = params.get("source")
    if kind == "generated":
        return {"source": "generated", "rows": int(params["rows"]), "seed": int(params["seed"])}
    if kind == "path":
        if not params.get("path"):
            raise ValueError("source 'path' needs the param 'path' (a file, folder or s3:// URI)")
        return {"source": "path", "path": str(params["path"])}
    if kind == "kaggle":
        version = params.get("version")
        return {"source": "kaggle", "version": None if version in (None, "") else int(version)}
    raise ValueError(f"unknown source {kind!r}: choose one of {', '.join(SOURCES)}")


def ingest_message(run_id: str, source: dict[str, Any], requested_by: str = "airflow") -> tuple[str, str]:
    """Key and value of the ``ingest.requested`` event (key = run id, as the services partition)."""
    event = {
        "version": 1,
        "run_id": run_id,
        "emitted_at": datetime.now(UTC).isoformat(),
        "request": source,
        "requested_by": requested_by[:64],
    }
    return run_id, json.dumps(event)


def ingest_messages(
    run_id: str, source: dict[str, Any], requested_by: str = "airflow"
) -> Iterator[tuple[str, str]]:
    """The producer function of the Kafka provider's ``ProduceToTopicOperator``: one message."""
    yield ingest_message(run_id, source, requested_by)


def rejected_share(report: dict[str, Any]) -> float:
    raw = int(report.get("raw_rows") or 0)
    return int(report.get("rejected_rows") or 0) / raw if raw else 0.0


COUNTS = ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs")


def progress_line(report: dict[str, Any]) -> str:
    """A run's state in one log line: its id, status, the five counts and the rejected share."""
    counts = ", ".join(f"{name} {int(report.get(name) or 0):,}" for name in COUNTS)
    return (
        f"run {report.get('run_id')} {report.get('status')}: {counts};"
        f" rejected share {rejected_share(report):.2%}"
    )


class GatewayError(RuntimeError):
    """The gateway answered with an error status; ``permanent`` when asking again cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = 400 <= status < 500 and status not in (404, 408, 429)


class NotFound(GatewayError):
    pass


def _call(method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    base = os.environ.get("LAKE_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/")
    gateway_configured()
    key = os.environ["LAKE_GATEWAY_API_KEY"]
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's configuration
        f"{base}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        message = f"gateway answered {exc.code} to {method} {path}: {detail}"
        if exc.code == 404:
            raise NotFound(message, exc.code) from exc
        raise GatewayError(message, exc.code) from exc


def gateway_configured() -> None:
    """Fail early, with the fix, when the gateway key is missing."""
    if not os.environ.get("LAKE_GATEWAY_API_KEY"):
        raise RuntimeError(
            "LAKE_GATEWAY_API_KEY is not set: create a key with `lake keys create airflow --role analyst`"
        )


def start_run(source: dict[str, Any]) -> str:
    """Publish an ``ingest.requested`` event through the gateway (needs an admin key); return the
    run id. The DAG publishes to Kafka itself; this is for scripts outside Airflow."""
    return str(_call("POST", "/runs", source)["run_id"])


NOT_FOUND = "not_found"  # the gateway has no such run (404): not a status of the platform


def run_report(run_id: str) -> dict[str, Any]:
    """The run's report, or ``status: not_found`` when the gateway has no such run (404).

    A run requested through the gateway or the CLI exists at once with status ``requested``. The
    DAG publishes ``ingest.requested`` to Kafka itself and holds no store of the platform, so its
    run has no row until the ingestor takes the event: ``not_found`` until then (the sensor waits
    ``pickup_timeout`` for it), ``requested`` never."""
    try:
        report: dict[str, Any] = _call("GET", f"/runs/{run_id}")
    except NotFound:
        return {"run_id": run_id, "status": NOT_FOUND}
    return report
