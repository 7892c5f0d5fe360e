"""The gateway app in-process (FastAPI's TestClient runs its lifespan) against the real stores:
docs served from its own assets, metrics, security headers, and a store that is down."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lake.cli import create_key
from lake.settings import Settings
from services.gateway.app import create_app


@pytest.fixture(scope="module")
def keys(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        role: {"Authorization": f"Bearer {create_key(settings, f'app-{role}', role)}"}
        for role in ("viewer", "analyst")
    }


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_swagger_and_redoc_load_only_the_gateways_own_assets(client: TestClient):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    for asset in ("/static/swagger-ui-bundle.js", "/static/swagger-ui.css", "/static/favicon.png"):
        assert client.get(asset).status_code == 200, asset
    redoc = client.get("/redoc").text
    assert "/static/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc
    assert client.get("/openapi.json").json()["info"]["title"]


def test_metrics_count_requests_by_route_template_and_need_a_key(client: TestClient, keys):
    client.get("/curated/1307025660663005184", headers=keys["viewer"])
    client.get("/health")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=keys["viewer"]).status_code == 403
    body = client.get("/metrics", headers=keys["analyst"]).text
    assert 'lake_gateway_requests_total{method="GET",route="/curated/{twitter_id}",status="404"}' in body
    assert 'lake_gateway_request_seconds_bucket{le="0.01",method="GET",route="/health"}' in body
    assert "1307025660663005184" not in body  # raw paths never become labels


def test_answers_carry_security_headers_and_no_cors_by_default(client: TestClient):
    answer = client.get("/health", headers={"Origin": "https://evil.example"})
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "access-control-allow-origin" not in answer.headers


def test_a_store_that_is_down_gives_503_naming_it(settings: Settings, keys):
    down = settings.model_copy(
        update={
            "mongo": settings.mongo.model_copy(
                update={"url": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"}
            )
        }
    )
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        answer = client.get("/curated", headers=keys["viewer"])
        assert answer.status_code == 503
        assert answer.json()["error"] == {
            "code": "store_unavailable",
            "message": "mongodb unavailable; try again later",
        }
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["services"]["mongodb"] is False


def test_a_query_over_the_time_limit_is_stopped_with_a_clear_422(settings: Settings, keys):
    import uuid
    from datetime import UTC, datetime

    from lake.adapters.staging_repo import StagingRepository
    from tests.integration.test_staging_repo import new_ids, rows

    repo = StagingRepository(settings.mysql)
    try:  # enough rows that a text scan takes longer than the limit below
        ids = new_ids(5000)
        run_id = f"slow-{uuid.uuid4().hex[:6]}"
        links = [(tid, "Apple", i + 1) for i, tid in enumerate(ids)]
        repo.stage_chunk(run_id, 0, "k", len(ids), rows(ids, run_id=run_id), links, [], {}, datetime.now(UTC))
    finally:
        repo.close()
    tight = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"query_timeout_s": 0.0002})}
    )
    with TestClient(create_app(tight), raise_server_exceptions=False) as client:
        answer = client.get(
            "/staging", params={"q": "zzqx no such text", "limit": 5}, headers=keys["analyst"]
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "query_too_costly"


def test_keys_are_created_listed_and_revoked_with_the_cli(settings: Settings, capsys):
    from lake import auth
    from lake.cli import main

    assert main(["keys", "create", "cli-probe", "--role", "analyst"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    key_id = auth.key_id_of(token)
    assert key_id is not None
    assert main(["keys", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(key_id)]
    assert len(listed) == 1 and "analyst" in listed[0] and "active" in listed[0] and "cli-probe" in listed[0]
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/runs", headers=headers).status_code == 200
    assert main(["keys", "revoke", key_id]) == 0
    assert main(["keys", "revoke", key_id]) == 1  # already revoked: said, not silently accepted
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/runs", headers=headers).status_code == 401
    assert main(["keys", "list"]) == 0
    assert "revoked" in next(line for line in capsys.readouterr().out.splitlines() if line.startswith(key_id))
