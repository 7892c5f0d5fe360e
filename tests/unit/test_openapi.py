"""The OpenAPI document is complete: every parameter and request body has an example, and every
answer has a real example (``services/gateway/openapi_examples.json``) that still validates against
the model the route answers with."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from services.gateway import metrics, openapi_examples
from services.gateway.app import create_app
from services.gateway.errors import ErrorResponse
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


@pytest.fixture(scope="module")
def app_and_spec() -> tuple[Any, dict[str, Any]]:
    app = create_app()  # the document needs no store: the lifespan does not run
    return app, app.openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def test_every_parameter_and_request_body_has_an_example(app_and_spec):
    _, spec = app_and_spec
    missing = []
    for method, path, op in operations(spec):
        for p in op.get("parameters", []):
            if not ("example" in p or "examples" in p or "examples" in p.get("schema", {})):
                missing.append(f"{method} {path} {p['name']}")
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and not ("example" in body or "examples" in body):
            missing.append(f"{method} {path} body")
    assert missing == []


def test_every_answer_has_a_real_example_that_validates_against_its_model(app_and_spec):
    _, spec = app_and_spec
    routers = (health, stats, raw, staging, curated, runs, dead_letters, pipeline, dashboard, metrics)
    models = {
        r.response_model.__name__: r.response_model
        for module in routers
        for r in module.router.routes
        if isinstance(r, APIRoute) and r.response_model is not None
    }
    models[ErrorResponse.__name__] = ErrorResponse
    referenced = set()
    for _, _, op in operations(spec):
        for answer in op["responses"].values():
            ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                referenced.add(ref.rsplit("/", 1)[1])
    examples = openapi_examples.load()
    assert referenced - set(examples) == set(), "answers without an example"
    for name in sorted(referenced):
        assert spec["components"]["schemas"][name]["examples"] == [examples[name]]
        models[name].model_validate(examples[name])  # raises when the example no longer fits
