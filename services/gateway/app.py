"""The gateway: one async FastAPI service over every layer. ``create_app()`` is its composition root."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from lake.settings import Settings, get_settings
from services.gateway import errors, metrics
from services.gateway.routes import curated, health, pipeline, raw, runs, staging, stats
from services.gateway.stores import open_stores

# Swagger UI and ReDoc from a PyPI package, served by the gateway: no CDN is reachable on many
# production networks (nor on our machines).
ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"

DESCRIPTION = """
Every layer of the BigTech tweets data lake behind one API.

Authenticate with an API key: `Authorization: Bearer lk_<id>_<secret>` (create one with
`lake keys create NAME --role viewer|analyst|admin`). `/health`, `/docs` and `/openapi.json` are open.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.settings = settings
            app.state.stores = await open_stores(settings, stack)
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
    if settings.gateway.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response: Response = await call_next(request)
        metrics.observe(request, response.status_code, time.perf_counter() - started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.mount("/static", StaticFiles(directory=ASSETS), name="static")

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

    for module in (health, stats, raw, staging, curated, runs, pipeline, metrics):
        app.include_router(module.router)
    return app
