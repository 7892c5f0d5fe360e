"""The little the Airflow DAG needs from the platform, over the gateway's HTTP API (standard library
only, so it runs in any Airflow image). Airflow only starts runs and watches them; the services do
the work."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

TERMINAL = {"succeeded", "failed"}


class NotFound(RuntimeError):
    pass


def _call(method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    base = os.environ.get("LAKE_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/")
    key = os.environ.get("LAKE_GATEWAY_API_KEY", "")
    if not key:
        raise RuntimeError("LAKE_GATEWAY_API_KEY is not set: create an admin key with `lake keys create`")
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
        if exc.code == 404:
            raise NotFound(detail) from exc
        raise RuntimeError(f"gateway answered {exc.code} to {method} {path}: {detail}") from exc


def start_run(source: dict[str, Any]) -> str:
    """Publish an ``ingest.requested`` event through the gateway; return the run id."""
    return str(_call("POST", "/runs", source)["run_id"])


def run_report(run_id: str) -> dict[str, Any]:
    """The run's report; ``status: requested`` while no service has picked the request up yet (the
    ingestor records a run when it consumes ``ingest.requested``)."""
    try:
        report: dict[str, Any] = _call("GET", f"/runs/{run_id}")
    except NotFound:
        return {"run_id": run_id, "status": "requested"}
    return report
