"""Schemathesis against the live gateway: generated requests for every read operation, with an
analyst key; no answer may be a server error, and every documented answer must match its schema.
(POST /runs is left out: it would start real runs; tests/e2e/test_pipeline.py covers it.)

The operations are driven with Hypothesis directly: schemathesis' pytest plugin does not run under
this project's pytest version (its lazy fixture fails on ``Function._nodeid``)."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from lake.cli import create_key
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e
EXAMPLES = 25


def test_no_server_error_and_every_answer_matches_the_schema(services: Services, settings: Settings):
    headers = {"Authorization": f"Bearer {create_key(settings, 'schemathesis analyst', 'analyst')}"}
    schema = schemathesis.openapi.from_url(f"{services.gateway}/openapi.json").include(method="GET")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 10, [op.label for op in operations]
    checked: dict[str, int] = {}
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                base_url=services.gateway,
                headers=headers,
                timeout=30,
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
            )
            checked[case.operation.label] = checked.get(case.operation.label, 0) + 1

        run()
    assert set(checked) == {op.label for op in operations}
