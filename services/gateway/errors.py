"""One error model for every 4xx/5xx: ``{"error": {"code": ..., "message": ...}}``; no stack traces."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import asyncmy.errors
import botocore.exceptions
import kafka.errors
import pymongo.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.tweet_pages import QueryTooCostly

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class StoreUnavailable(Exception):
    def __init__(self, store: str, detail: str) -> None:
        super().__init__(f"{store} unavailable: {detail}")
        self.store = store


@contextmanager
def unavailable_as(store: str) -> Iterator[None]:
    """Any failure inside the block is ``store`` being unavailable: 503 naming it (the error's
    class only; the detail goes nowhere near the client). Keep only store calls inside."""
    try:
        yield
    except Exception as exc:
        raise StoreUnavailable(store, type(exc).__name__) from exc


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


STATEMENT_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time


def _store_down(store: str, exc: Exception) -> JSONResponse:
    """A store that cannot be reached: 503 naming it (the detail goes to the log, not the client)."""
    log.warning("%s unavailable: %s: %s", store, type(exc).__name__, exc)
    return JSONResponse(_body("store_unavailable", f"{store} unavailable; try again later"), 503)


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

    @app.exception_handler(QueryTooCostly)
    async def too_costly(_: Request, exc: QueryTooCostly) -> JSONResponse:
        return JSONResponse(_body("query_too_costly", str(exc)), 422)

    @app.exception_handler(pymongo.errors.ExecutionTimeout)
    async def mongo_too_long(_: Request, exc: pymongo.errors.ExecutionTimeout) -> JSONResponse:
        return JSONResponse(_body("query_too_costly", "the query ran too long; narrow it with filters"), 422)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(_body("store_unavailable", str(exc)), 503)

    @app.exception_handler(asyncmy.errors.OperationalError)
    @app.exception_handler(asyncmy.errors.InternalError)
    async def mysql_down(_: Request, exc: asyncmy.errors.MySQLError) -> JSONResponse:
        if exc.args and exc.args[0] in STATEMENT_TIMEOUT:
            return JSONResponse(
                _body("query_too_costly", "the query ran too long; narrow it with filters"), 422
            )
        return _store_down("mysql", exc)

    @app.exception_handler(pymongo.errors.ConnectionFailure)
    async def mongodb_down(_: Request, exc: pymongo.errors.ConnectionFailure) -> JSONResponse:
        return _store_down("mongodb", exc)

    @app.exception_handler(botocore.exceptions.HTTPClientError)
    async def s3_down(_: Request, exc: botocore.exceptions.HTTPClientError) -> JSONResponse:
        return _store_down("s3", exc)

    @app.exception_handler(kafka.errors.KafkaError)
    async def kafka_down(_: Request, exc: kafka.errors.KafkaError) -> JSONResponse:
        return _store_down("kafka", exc)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(_body("internal_error", "internal error; see the gateway log"), 500)
