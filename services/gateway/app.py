"""The gateway: one async FastAPI service over every layer. ``create_app()`` is its composition root."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lake.settings import Settings, get_settings
from services.gateway import errors, metrics, openapi_examples
from services.gateway.hot_routes import HotRoutes
from services.gateway.routes import (
    curated,
    dashboard,
    dead_letters,
    health,
    pipeline,
    raw,
    runs,
    staging,
    stats,
)
from services.gateway.stores import open_stores

# Swagger UI and ReDoc from a PyPI package, served by the gateway: no CDN is reachable on many
# production networks (nor on our machines).
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
# The dashboard's own page, script, style and icon (services/gateway/static/dashboard).
DASHBOARD_ASSETS = Path(__file__).resolve().parent / "static" / "dashboard"

DESCRIPTION = """
Every layer of the BigTech tweets data lake behind one API.

Authenticate with an API key: `Authorization: Bearer lk_<id>_<secret>` (create one with
`lake keys create NAME --role viewer|analyst|admin`). `/health`, `/docs` and `/openapi.json` are open.
The pipeline dashboard is at `/dashboard` (the page is open; it asks for a key of any role).
"""


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class HeadersAndMetrics:
    """Security headers on every answer, and the request metrics. A plain ASGI middleware:
    Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) costs a task and a stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            metrics.observe(scope, status, time.perf_counter() - started)


def _add_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc, from the gateway's own assets (``fastapi_offline``), and the dashboard's."""
    app.mount("/static", StaticFiles(directory=ASSETS), name="static")
    app.mount("/dashboard/assets", StaticFiles(directory=DASHBOARD_ASSETS), name="dashboard-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — Swagger UI",
            swagger_js_url="/static/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui.css",
            swagger_favicon_url="/static/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — ReDoc",
            redoc_js_url="/static/redoc.standalone.js",
            redoc_favicon_url="/static/favicon.png",
            with_google_fonts=False,
        )


def create_app(settings: Settings | None = None, hot_routes: bool = True) -> FastAPI:
    """The gateway. ``hot_routes=False`` serves every request through FastAPI's routes (the tests
    compare both: ``services.gateway.hot_routes``)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.settings = settings
            app.state.stores = await open_stores(settings, stack)
            # the stores' clients hold ≈ 200k objects that live as long as the process (two copies
            # of botocore's S3 model alone are 44k OrderedDicts): moved out of the collector's
            # generations, its full passes stop walking them. Each pass took 50-200 ms with every
            # request in flight waiting (docs/benchmarks.md, "The mix's p99 and Python's garbage
            # collector"); lake.service.run_service does the same in the pipeline's services
            gc.collect()
            gc.freeze()
            yield

    app = FastAPI(
        title="BigTech tweets data lake",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses={
            401: {"model": errors.ErrorResponse},
            403: {"model": errors.ErrorResponse},
            422: {"model": errors.ErrorResponse},
            503: {"model": errors.ErrorResponse},
        },
    )
    errors.install(app)
    if hot_routes:  # innermost: the CORS, security headers and metrics wrap its answers too
        app.add_middleware(HotRoutes, gateway=app)
    if settings.gateway.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    app.add_middleware(HeadersAndMetrics)

    _add_docs(app)

    for module in (health, stats, raw, staging, curated, runs, dead_letters, pipeline, dashboard, metrics):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        """FastAPI's document, plus a real example of every answer (``openapi_examples.json``)."""
        if app.openapi_schema is None:
            app.openapi_schema = openapi_examples.add_examples(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
