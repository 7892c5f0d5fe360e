"""JSON answers of the hot routes, built without a second validation.

FastAPI validates a route's return value against its ``response_model`` and then serialises it.
For ``/staging`` and ``/curated`` pages, ``/curated/{id}`` and ``/stats`` the data already has the
model's shape (rendered by MySQL, read from the curated documents, or a ``Stats`` built once a
second), so that validation is pure cost on every request (≈ 10 % of the gateway's CPU in the main
mix, 23 % on ``/curated`` pages). These routes return ``json_answer(...)``: a ``Response`` that
FastAPI passes through, serialised by pydantic-core's ``to_json`` (the same serialiser, the same
output for these types). The models stay the routes' ``response_model`` for the OpenAPI document,
and the tests check real answers against them (``tests/e2e/test_gateway_data.py``, schemathesis).
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic_core import to_json

MEDIA_TYPE = "application/json"


def json_answer(content: Any) -> Response:
    return Response(to_json(content), media_type=MEDIA_TYPE)


def json_bytes(body: bytes) -> Response:
    """An answer serialised earlier (a shared answer: serialised once, sent to every caller)."""
    return Response(body, media_type=MEDIA_TYPE)
