"""The gateway: one async FastAPI service over every layer. ``create_app()`` is its composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from lake.settings import Settings, get_settings
from services.gateway import errors
from services.gateway.routes import curated, health, pipeline, raw, runs, staging, stats
from services.gateway.stores import open_stores

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
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    for module in (health, stats, raw, staging, curated, runs, pipeline):
        app.include_router(module.router)
    return app
