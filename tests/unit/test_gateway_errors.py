"""One path from an error to an HTTP answer (``services.gateway.errors``): domain errors and the
store clients' errors, read by ``lake.faults`` as the services read them, each to one status and
code — a statement time-out is 422 ``query_too_costly`` whichever store or route raised it; a store
that cannot be reached is 503 naming it, with nothing of the client's detail."""

from __future__ import annotations

import asyncmy.errors
import botocore.exceptions
import kafka.errors
import pymongo.errors
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway import errors
from services.gateway.query import InvalidQuery
from services.gateway.read.tweets import NotFound
from services.gateway.stores import StoreUnavailable
from services.gateway.tweet_pages import QueryTooCostly

TOO_LONG = ("query_too_costly", "the query ran too long; narrow it with filters")
INTERNAL = ("internal_error", "internal error; see the gateway log")


def down(store: str) -> tuple[str, str]:
    return ("store_unavailable", f"{store} unavailable; try again later")


CASES: list[tuple[Exception, int, tuple[str, str]]] = [
    (asyncmy.errors.InternalError(1969, "max_statement_time exceeded"), 422, TOO_LONG),
    (asyncmy.errors.OperationalError(3024, "max_execution_time exceeded"), 422, TOO_LONG),
    (pymongo.errors.ExecutionTimeout("operation exceeded time limit"), 422, TOO_LONG),
    (asyncmy.errors.OperationalError(2003, "Can't connect to 10.0.0.7"), 503, down("mysql")),
    (pymongo.errors.ServerSelectionTimeoutError("10.0.0.8:27017 refused"), 503, down("mongodb")),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://10.0.0.9"), 503, down("s3")),
    (kafka.errors.KafkaConnectionError("10.0.0.10:9092"), 503, down("kafka")),
    (StoreUnavailable("kafka"), 503, down("kafka")),
    (asyncmy.errors.ProgrammingError(1146, "Table 'lake.x' doesn't exist at 10.0.0.7"), 500, INTERNAL),
    (InvalidQuery("cursor: not a cursor"), 422, ("invalid_request", "cursor: not a cursor")),
    (NotFound("no curated tweet 1"), 404, ("not_found", "no curated tweet 1")),
    (QueryTooCostly("too sparse; narrow it"), 422, ("query_too_costly", "too sparse; narrow it")),
]


# every case raised as it is, and a store client's error also wrapped (its cause is read)
RAISED = [(n, False) for n in range(len(CASES))] + [
    (n, True) for n, (exc, _, _) in enumerate(CASES) if isinstance(exc, errors.STORE_ERRORS)
]


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/raise/{n}")
    async def raise_(n: int, wrapped: bool = False) -> None:
        exc = CASES[n][0]
        if not wrapped:
            raise exc
        try:
            raise exc
        except Exception as inner:
            raise RuntimeError("page failed") from inner

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("n", "wrapped"), RAISED)
def test_each_error_has_one_answer(client: TestClient, n: int, wrapped: bool):
    _, status, (code, message) = CASES[n]
    answer = client.get(f"/raise/{n}", params={"wrapped": wrapped})
    assert answer.status_code == status
    assert answer.json() == {"error": {"code": code, "message": message}}
    assert "10.0.0" not in answer.text
