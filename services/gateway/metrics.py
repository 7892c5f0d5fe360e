"""Prometheus metrics of the gateway at ``/metrics``: requests, latencies and errors per route.

With several worker processes (``LAKE_GATEWAY_WORKERS``), ``PROMETHEUS_MULTIPROC_DIR`` is set and
each process writes its values to files there; ``/metrics`` then answers their sum, whichever
process serves the scrape."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import Scope

from services.gateway.deps import Analyst

router = APIRouter(tags=["health"])

REQUESTS = Counter(
    "lake_gateway_requests_total", "HTTP requests, by method, route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "lake_gateway_request_seconds",
    "HTTP request latency, by method and route",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
)
ERRORS = Counter("lake_gateway_errors_total", "Answers with a 5xx status, by route", ["route"])
CURATED_CACHE = Counter(
    "lake_gateway_curated_cache_total",
    "Documents of /curated pages taken from the gateway's cache (hit) or read from the store (miss)",
    ["outcome"],
)


def route_label(scope: Scope) -> str:
    """The route's template (``/curated/{twitter_id}``), never the raw path (unbounded): an API
    route's own path; a mounted app (static files) as ``/static/{path}``; a plain route without
    parameters (``/openapi.json``) as its path; nothing matched (a 404) as ``unmatched``."""
    route = scope.get("route")
    if (path := getattr(route, "path", None)) is not None:
        return str(path)
    if scope.get("endpoint") is None:
        return "unmatched"
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path", "")
    if root != app_root:
        return f"{root[len(app_root) :]}/{{path}}"
    return str(scope.get("path", "unmatched"))


def observe(scope: Scope, status: int, seconds: float) -> None:
    name = route_label(scope)
    method = scope.get("method", "GET")
    REQUESTS.labels(method, name, str(status)).inc()
    LATENCY.labels(method, name).observe(seconds)
    if status >= 500:
        ERRORS.labels(name).inc()


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latencies, errors (analyst; scrape with a bearer key)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(_: Analyst) -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
