"""One error model for every 4xx/5xx: ``{"error": {"code": ..., "message": ...}}``; no stack traces.

The one place where an error becomes an HTTP answer: query and read code raise domain errors
(``query.InvalidQuery``, ``tweet_pages.QueryTooCostly``, ``read.tweets.NotFound``,
``stores.StoreUnavailable``) or let the
store clients' errors through, and ``install`` maps them — a store client's error by what
``lake.faults`` says it means, as the services read it (a statement time-out is 422
``query_too_costly`` on every route; a store that cannot be reached is 503 naming it)."""

from __future__ import annotations

import logging

import asyncmy.errors
import botocore.exceptions
import kafka.errors
import pymongo.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from lake.faults import ran_too_long, unavailable_store
from services.gateway.query import InvalidQuery
from services.gateway.read.tweets import NotFound
from services.gateway.stores import StoreUnavailable
from services.gateway.tweet_pages import QueryTooCostly

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def _body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


# The store clients' errors: what each means comes from ``lake.faults``, as in the services
STORE_ERRORS: tuple[type[Exception], ...] = (
    asyncmy.errors.MySQLError,
    pymongo.errors.PyMongoError,
    botocore.exceptions.BotoCoreError,
    kafka.errors.KafkaError,
)
TOO_LONG = "the query ran too long; narrow it with filters"


def _unavailable(store: str) -> JSONResponse:
    return JSONResponse(_body("store_unavailable", f"{store} unavailable; try again later"), 503)


def _internal() -> JSONResponse:
    return JSONResponse(_body("internal_error", "internal error; see the gateway log"), 500)


def store_error(exc: Exception) -> JSONResponse:
    """A store client's error: 422 ``query_too_costly`` for a statement stopped at its time limit,
    503 naming the store when it cannot be reached (the detail goes to the log, not the client),
    else 500."""
    if ran_too_long(exc):
        return JSONResponse(_body("query_too_costly", TOO_LONG), 422)
    if (store := unavailable_store(exc)) is not None:
        log.warning("%s unavailable: %s: %s", store, type(exc).__name__, exc)
        return _unavailable(store)
    log.error("store error", exc_info=exc)
    return _internal()


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            _body(CODES.get(exc.status_code, "error"), str(exc.detail)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(_body("invalid_request", "; ".join(parts)[:1000]), 422)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(_body("not_found", str(exc)), 404)

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_: Request, exc: InvalidQuery) -> JSONResponse:
        return JSONResponse(_body("invalid_request", str(exc)), 422)

    @app.exception_handler(QueryTooCostly)
    async def too_costly(_: Request, exc: QueryTooCostly) -> JSONResponse:
        return JSONResponse(_body("query_too_costly", str(exc)), 422)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("%s: %s", exc, exc.__cause__)
        return _unavailable(exc.store)

    async def store_failed(_: Request, exc: Exception) -> JSONResponse:
        return store_error(exc)

    for kind in STORE_ERRORS:
        app.add_exception_handler(kind, store_failed)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        if ran_too_long(exc) or unavailable_store(exc) is not None:  # a store's error, wrapped
            return store_error(exc)
        log.exception("unhandled error")
        return _internal()
