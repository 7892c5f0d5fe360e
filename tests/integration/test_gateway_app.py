"""The gateway app in-process (FastAPI's TestClient runs its lifespan) against the real stores:
docs served from its own assets, metrics, security headers, and a store that is down."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka.errors import KafkaConnectionError
from prometheus_client.parser import text_string_to_metric_families

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
    client.get("/openapi.json")
    client.get("/static/swagger-ui.css")
    client.get("/dashboard/assets/dashboard.js")
    client.get("/no/such/path/4242")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=keys["viewer"]).status_code == 403
    body = client.get("/metrics", headers=keys["analyst"]).text
    assert 'lake_gateway_requests_total{method="GET",route="/curated/{twitter_id}",status="404"}' in body
    assert 'lake_gateway_request_seconds_bucket{le="0.01",method="GET",route="/health"}' in body
    for route, status in (
        ("/openapi.json", 200),
        ("/static/{path}", 200),
        ("/dashboard/assets/{path}", 200),
        ("unmatched", 404),
    ):
        assert f'lake_gateway_requests_total{{method="GET",route="{route}",status="{status}"}}' in body
    # raw paths never become labels (matched against label values: a float such as a `_created`
    # timestamp may hold any run of digits)
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if "route" in sample.labels
    }
    assert "/curated/{twitter_id}" in routes
    assert not {r for r in routes if "1307025660663005184" in r or "swagger-ui.css" in r or "4242" in r}


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
        # a whole document is read from the document store (pages come from MySQL's projection)
        answer = client.get("/curated/1307025660663005184", headers=keys["viewer"])
        assert answer.status_code == 503
        assert answer.json()["error"] == {
            "code": "store_unavailable",
            "message": "mongodb unavailable; try again later",
        }
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["services"]["mongodb"] is False
        assert health.json()["status"] == health.json()["api_status"] == "degraded"


def test_pipeline_answers_from_the_snapshot_it_shares_with_health_and_the_dashboard(settings: Settings, keys):
    with TestClient(create_app(settings)) as client:
        shared = client.app.state.stores.pipeline  # type: ignore[attr-defined]
        shared.ttl = 3600.0  # the test's pace does not matter
        first = client.get("/pipeline", headers=keys["analyst"])
        assert first.status_code == 200, first.text
        assert shared.value is not None and first.json()["topics"] == shared.value["topics"]
        taken = shared.at
        again = client.get("/pipeline", headers=keys["analyst"])
        # within the snapshot's life: the same answer, Kafka not asked again
        assert shared.at == taken and again.json() == first.json()


def test_a_broker_that_cannot_be_reached_gives_503_naming_it_and_nothing_of_the_server(
    settings: Settings, keys
):
    kafka = settings.kafka.model_copy(update={"bootstrap": "127.0.0.1:9"})
    down = settings.model_copy(update={"kafka": kafka})
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        answer = client.get("/pipeline", headers=keys["analyst"])
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == {
            "code": "store_unavailable",
            "message": "kafka unavailable; try again later",
        }


class _StoppedAnswering:
    """An admin client that had connected, whose broker no longer answers; records whether the
    gateway closed it while holding the lock its calls are serialised by."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.closed_holding_lock: bool | None = None

    def close(self) -> None:
        self.closed_holding_lock = self.lock.locked()

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise KafkaConnectionError(f"{name}: the broker stopped answering")

        return call


def test_pipeline_closes_a_failed_kafka_client_under_its_lock_and_connects_again(settings: Settings, keys):
    """Another request may be using the shared admin client: it is closed only under the lock that
    serialises its calls, and the next snapshot connects anew (here to the real broker)."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        stores = client.app.state.stores  # type: ignore[attr-defined]
        broken = _StoppedAnswering(stores.kafka_lock)
        stores._kafka = broken
        answer = client.get("/pipeline", headers=keys["analyst"])
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["message"] == "kafka unavailable; try again later"
        assert broken.closed_holding_lock is True and stores._kafka is None
        answer = client.get("/pipeline", headers=keys["analyst"])
        assert answer.status_code == 200, answer.text
        assert settings.topic("raw.ready") in {t["name"] for t in answer.json()["topics"]}
        assert stores._kafka is not None and stores._kafka is not broken


def test_a_query_over_the_time_limit_is_stopped_with_a_clear_422(settings: Settings, keys):
    import uuid
    from datetime import UTC, datetime

    from lake.adapters.staging_repo import StagingRepository
    from lake.transform.stage import staged_frame
    from tests.integration.test_staging_repo import new_ids, rows

    repo = StagingRepository(settings.mysql)
    try:  # enough rows that a text scan takes longer than the limit below
        ids = new_ids(5000)
        run_id = f"slow-{uuid.uuid4().hex[:6]}"
        links = [(tid, "Apple", i + 1) for i, tid in enumerate(ids)]
        frame = staged_frame(rows(ids, run_id=run_id))
        repo.stage_chunk(run_id, 0, "k", len(ids), frame, links, [], {}, datetime.now(UTC))
    finally:
        repo.close()
    tight = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"query_timeout_s": 0.0002})}
    )
    # one mapping for every route (errors.install): a statement stopped at its limit is 422
    # query_too_costly, whether FastAPI's route or the hot path served the page
    for hot_routes in (True, False):
        with TestClient(create_app(tight, hot_routes=hot_routes), raise_server_exceptions=False) as client:
            params = {"q": "zzqx no such text", "limit": "5"}
            answer = client.get("/staging", params=params, headers=keys["analyst"])
            assert answer.status_code == 422, (hot_routes, answer.text)
            assert answer.json()["error"] == {
                "code": "query_too_costly",
                "message": "the query ran too long; narrow it with filters",
            }


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


def test_a_key_made_elsewhere_is_imported_once_and_works(
    settings: Settings, capsys, monkeypatch: pytest.MonkeyPatch
):
    from lake.cli import main

    assert main(["keys", "generate"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    monkeypatch.setenv("AIRFLOW_KEY", token)
    command = ["keys", "import", "airflow", "--role", "analyst", "--from-env", "AIRFLOW_KEY"]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert main(command) == 0
        assert client.get("/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert main(command) == 0 and "already registered" in capsys.readouterr().err  # idempotent
    assert main([*command[:3], "--role", "admin", *command[5:]]) == 1  # not silently promoted
    key_id = token.split("_")[1]
    monkeypatch.setenv("AIRFLOW_KEY", f"lk_{key_id}_{'x' * 43}")
    assert main(command) == 1 and "belongs to another key" in capsys.readouterr().err
    monkeypatch.setenv("AIRFLOW_KEY", "lk-dev-placeholder")
    assert main(command) == 1 and "not a key of the form" in capsys.readouterr().err


def test_daily_stats_equal_the_staged_rows_per_day_company_and_sentiment(
    client: TestClient, keys, settings: Settings, pipeline
):
    from lake.adapters.mysql import connect
    from lake.events import GeneratedSource, IngestRequested, RawChunkReady

    pub, ingestor, stager, *_ = pipeline
    ingestor.handle(
        IngestRequested(run_id=f"daily-{uuid.uuid4().hex[:8]}", request=GeneratedSource(rows=2100))
    )
    for raw in pub.of(RawChunkReady):
        stager.handle(raw)
    answer = client.get("/stats/daily", headers=keys["viewer"])
    assert answer.status_code == 200
    daily = answer.json()
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT DATE_FORMAT(created_at, '%Y-%m-%d'), company, sentiment, COUNT(*) FROM tweets"
            " WHERE run_id IN (SELECT run_id FROM runs) GROUP BY 1, 2, 3"
        )
        rows = cur.fetchall()
    assert rows, "the suite has staged tweets by now"
    expected_days = sorted({r[0] for r in rows})
    assert daily["days"] == expected_days
    for name, facet in (("by_company", 1), ("by_sentiment", 2)):
        for value, counts in daily[name].items():
            assert counts == [  # each day's count, exactly
                sum(int(r[3]) for r in rows if r[0] == d and r[facet] == value) for d in expected_days
            ]
    week = client.get(
        "/stats/daily?start_date=2020-09-14&end_date=2020-09-20&company=Apple", headers=keys["viewer"]
    ).json()
    assert week["days"] and all("2020-09-14" <= d <= "2020-09-20" for d in week["days"])
    assert list(week["by_company"]) == ["Apple"]
    backwards = client.get("/stats/daily?start_date=2020-09-20&end_date=2020-09-14", headers=keys["viewer"])
    assert backwards.status_code == 422 and "after end_date" in backwards.json()["error"]["message"]
    assert client.get("/stats/daily").status_code == 401


def test_the_dashboard_page_is_open_and_same_origin_only_and_its_data_needs_a_viewer(
    client: TestClient, keys
):
    page = client.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert urls and all(u.startswith("/dashboard/assets/") for u in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "style=" not in page.text  # the CSP allows no inline style
    assert client.get("/dashboard/overview").status_code == 401
    overview = client.get("/dashboard/overview", headers=keys["viewer"])
    assert overview.status_code == 200
    body = overview.json()
    assert set(body) == {
        "generated_at",
        "role",
        "stats",
        "runs",
        "pipeline",
        "pipeline_error",
        "dead_letters",
    }
    assert body["role"] == "viewer"
    assert all(":" not in x["error"] for x in body["dead_letters"])  # a viewer sees the kind only
    assert body["stats"] == client.get("/stats", headers=keys["viewer"]).json()
    for run in body["runs"]:
        assert "source" not in run and "requested_by" not in run  # viewers see aggregates only
        assert run["raw_rows"] == run["staged_rows"] + run["rejected_rows"] + run["duplicate_rows"] or (
            run["status"] != "succeeded"
        )
    assert body["pipeline"] is not None and set(body["pipeline"]["lag"]) == {"ingestor", "stager", "curator"}


def test_the_gateway_runs_at_most_its_mysql_connections_queries_at_once(settings: Settings):
    """LAKE_GATEWAY_MYSQL_CONNECTIONS caps the queries one gateway process runs at once on MySQL
    (so an ingestion's writes keep a share of the server under API load, docs/decisions.md): with
    2, two queries run and a third waits for a connection, then runs once one is back; /health's
    probe has a connection of its own meanwhile."""
    import asyncio
    from contextlib import AsyncExitStack

    from services.gateway.stores import open_stores

    capped = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"mysql_connections": 2})}
    )

    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            stores = await open_stores(capped, stack)
            pool = stores.mysql
            assert pool.maxsize == 2
            held = [await pool.acquire(), await pool.acquire()]
            third = asyncio.ensure_future(pool.acquire())
            try:
                for conn in held:  # both are real sessions on the server
                    async with conn.cursor() as cur:
                        await cur.execute("SELECT CONNECTION_ID()")
                        assert (await cur.fetchone())[0] > 0
                await asyncio.sleep(0.3)
                assert not third.done()  # no third connection while two are in use
                pool.release(held.pop())
                held.append(await asyncio.wait_for(third, 5))
                async with held[-1].cursor() as cur:
                    await cur.execute("SELECT 1")
                    assert (await cur.fetchone())[0] == 1
                assert pool.size == 2
                # /health probes on a connection of its own, free while the pool is exhausted
                async with stores.mysql_health.acquire() as conn, conn.cursor() as cur:
                    await cur.execute("SELECT 1")
                    assert (await cur.fetchone())[0] == 1
            finally:  # a pool waits for its connections to come back before it closes
                acquired = third.done() and not third.cancelled() and third.exception() is None
                if acquired and third.result() not in held:
                    held.append(third.result())
                third.cancel()
                for conn in held:
                    pool.release(conn)

    asyncio.run(scenario())
