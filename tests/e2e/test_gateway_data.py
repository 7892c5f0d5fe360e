"""The gateway's data endpoints against the live service and a run that went through every layer:
/raw streamed from S3, /staging and /curated with filters and cursors, a tweet's lineage, and
/pipeline — with the roles each needs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from lake.adapters.mysql import connect
from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e
ROWS = 3000


@pytest.fixture(scope="module")
def run(services: Services, settings: Settings) -> dict[str, Any]:
    run_id = request_run(settings, GeneratedSource(rows=ROWS, seed=909, malformed_share=0.01), "e2e-data")
    summary = wait_for_run(settings, run_id, timeout=180, expected_rows=ROWS)
    assert summary["status"] == "succeeded", summary
    return summary


@pytest.fixture(scope="module")
def analyst(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(settings, 'e2e analyst', 'analyst')}"}


@pytest.fixture(scope="module")
def http(services: Services) -> Any:
    with httpx.Client(base_url=services.gateway, timeout=30) as client:
        yield client


def staged_ids(settings: Settings, run_id: str, where: str = "", args: tuple[Any, ...] = ()) -> list[str]:
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT twitter_id FROM tweets t WHERE run_id = %s{where}"
            " ORDER BY created_at DESC, twitter_id DESC",
            (run_id, *args),
        )
        return [str(r[0]) for r in cur.fetchall()]


def test_raw_streams_the_latest_runs_first_object_by_default(http, run, analyst):
    page = http.get("/raw", params={"limit": 10}, headers=analyst)
    assert page.status_code == 200, page.text
    body = page.json()
    assert len(body["records"]) == 10 and body["next_offset"] == 10
    assert body["columns"][0] == "created_at" and "twitter_id" in body["columns"]
    assert [r["record_no"] for r in body["records"]] == list(range(1, 11))
    mine = http.get("/raw", params={"run_id": run["run_id"], "offset": ROWS - 2, "limit": 5}, headers=analyst)
    tail = mine.json()
    assert [r["record_no"] for r in tail["records"]] == [ROWS - 1, ROWS] and tail["next_offset"] is None
    assert tail["key"] == tail["objects"][0] and tail["key"].startswith(f"runs/{run['run_id']}/")


def test_staging_filters_match_sql_and_cursors_walk_every_row_once(http, run, analyst, settings):
    expected = staged_ids(settings, run["run_id"], " AND sentiment = %s", ("positive",))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sentiment": "positive", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/staging", params=params, headers=analyst).json()
        seen += [i["twitter_id"] for i in page["items"] if i["run_id"] == run["run_id"]]
        assert all(i["sentiment"] == "positive" for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and len(seen) > 100
    day = http.get("/staging", params={"limit": 1}, headers=analyst).json()["items"][0]["created_at"][:10]
    one_day = http.get(
        "/staging", params={"start_date": day, "end_date": day, "limit": 1000}, headers=analyst
    ).json()["items"]
    assert one_day and all(i["created_at"][:10] == day for i in one_day)
    assert date.fromisoformat(day)


def walk(http: Any, headers: dict[str, str], params: dict[str, Any], run_id: str) -> list[str]:
    """Every page of /staging by cursor: the ids of the run's tweets, in the order served."""
    seen: list[str] = []
    cursor = None
    while True:
        page = http.get("/staging", params=params | ({"cursor": cursor} if cursor else {}), headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [i["twitter_id"] for i in body["items"] if i["run_id"] == run_id]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_company_pages_read_by_the_link_index_match_the_tweets_they_link(http, run, analyst, settings):
    # A company filter is served from tweet_companies' copies of created_at and sentiment (migration
    # 004); every page must be what the tweets themselves give, in both orders, across cursors.
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM tweet_companies tc JOIN tweets t ON t.twitter_id = tc.twitter_id"
            " WHERE NOT (tc.created_at <=> t.created_at AND tc.sentiment <=> t.sentiment)"
        )
        assert cur.fetchone() == (0,)
        cur.execute(
            "SELECT company, MIN(DATE(created_at)) FROM tweet_companies WHERE run_id = %s"
            " GROUP BY company ORDER BY COUNT(*) DESC LIMIT 1",
            (run["run_id"],),
        )
        company, first_day = cur.fetchone()  # type: ignore[misc]
    linked = (
        " AND EXISTS (SELECT 1 FROM tweet_companies c WHERE c.twitter_id = t.twitter_id AND c.company = %s)"
    )
    expected = staged_ids(settings, run["run_id"], linked, (company,))
    assert len(expected) > 100
    assert walk(http, analyst, {"company": company, "limit": 37}, run["run_id"]) == expected
    oldest_first = walk(http, analyst, {"company": company, "sort": "created_at", "limit": 50}, run["run_id"])
    assert oldest_first == expected[::-1]
    negative = staged_ids(settings, run["run_id"], linked + " AND sentiment = %s", (company, "negative"))
    params = {"company": company, "sentiment": "negative", "limit": 9}
    assert walk(http, analyst, params, run["run_id"]) == negative and negative
    week = {"start_date": first_day.isoformat(), "end_date": (first_day + timedelta(days=6)).isoformat()}
    in_week = staged_ids(
        settings,
        run["run_id"],
        linked + " AND created_at >= %s AND created_at < %s",
        (company, first_day, first_day + timedelta(days=7)),
    )
    assert walk(http, analyst, {"company": company, "limit": 11} | week, run["run_id"]) == in_week and in_week


def test_staging_company_hashtag_text_and_follower_filters(http, run, analyst, settings):
    items = http.get(
        "/staging",
        params={"company": "Tesla", "hashtag": "#Tesla", "min_followers": 100, "limit": 1000},
        headers=analyst,
    ).json()["items"]
    assert items
    for item in items[:5]:
        detail = http.get(f"/staging/{item['twitter_id']}", headers=analyst).json()
        assert "Tesla" in detail["companies"] and "tesla" in detail["hashtags"]
        assert detail["followers"] >= 100
    # q is checked on the entries of the index that serves the rest of the query: narrowed to the
    # tweet's day and company, the walk ends within the bound whatever else the namespace holds
    word = items[0]["text"].split()[0]
    day = items[0]["created_at"][:10]
    params = {"q": word, "company": "Tesla", "start_date": day, "end_date": day, "limit": 50}
    found = http.get("/staging", params=params, headers=analyst).json()["items"]
    assert items[0]["twitter_id"] in {i["twitter_id"] for i in found}
    assert all(word.lower() in i["text"].lower() for i in found)


def order_key(item: dict[str, Any]) -> tuple[str, int]:
    return item["created_at"], int(item["twitter_id"])


# /curated list pages are planned over the curated catalogue in MySQL (docs/api.md); these name a
# week to exercise the date filters (tests/e2e/test_list_queries.py covers every filter).
ONE_WEEK = {"start_date": "2020-09-14", "end_date": "2020-09-20"}


def test_curated_filters_pages_and_shows_tokens_only_when_asked(http, run, analyst, viewer_key):
    viewer = {"Authorization": f"Bearer {viewer_key}"}
    first = {"sentiment": "negative", "limit": 10, **ONE_WEEK}
    answer = http.get("/curated", params=first, headers=viewer)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    items = page["items"]
    assert len(items) == 10 and page["next_cursor"]
    assert all(i["sentiment"] == "negative" and "tokens" not in i for i in items)
    assert [order_key(i) for i in items] == sorted((order_key(i) for i in items), reverse=True)
    for item in items:  # the same tweet in staging
        staged = http.get(f"/staging/{item['twitter_id']}", headers=analyst).json()
        assert (staged["sentiment"], staged["created_at"]) == ("negative", item["created_at"])
    params = {**first, "cursor": page["next_cursor"]}
    second = http.get("/curated", params=params, headers=viewer).json()["items"]
    assert second and order_key(second[0]) < order_key(items[-1])
    with_tokens = http.get(
        "/curated", params={"limit": 1, "include_tokens": "true", **ONE_WEEK}, headers=viewer
    ).json()
    assert with_tokens["items"][0]["tokens"]["ids"][0] == 101


def test_a_curated_tweet_leads_back_to_its_staged_row_and_raw_record(http, run, analyst, viewer_key):
    viewer = {"Authorization": f"Bearer {viewer_key}"}
    some = http.get("/staging", params={"limit": 1}, headers=analyst).json()["items"][0]
    detail = http.get(f"/curated/{some['twitter_id']}", headers=viewer)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    lineage = body["lineage"]
    assert body["staged"]["twitter_id"] == some["twitter_id"] == body["document"]["twitter_id"]
    assert (
        lineage["raw_key"] == body["staged"]["raw_key"]
        and lineage["record_no"] == body["staged"]["record_no"]
    )
    raw = http.get(
        "/raw",
        params={
            "run_id": lineage["run_id"],
            "key": lineage["raw_key"],
            "offset": lineage["record_no"] - 1,
            "limit": 1,
        },
        headers=analyst,
    ).json()
    assert raw["records"][0]["fields"]["twitter_id"] == some["twitter_id"]
    assert http.get("/curated/1", headers=viewer).status_code == 404
    assert http.get("/curated/12ab", headers=viewer).status_code == 422


def test_pipeline_shows_topics_lag_and_dead_letters(http, run, analyst, settings):
    body = http.get("/pipeline", headers=analyst).json()
    names = {t["name"] for t in body["topics"]}
    assert settings.topic("raw.ready") in names and settings.topic("raw.ready") + ".dlq" in names
    assert all(t["partitions"] == settings.kafka.partitions for t in body["topics"])
    raw_ready = next(t for t in body["topics"] if t["name"] == settings.topic("raw.ready"))
    assert raw_ready["messages"] >= ROWS // 1500
    assert {g["service"] for g in body["consumer_groups"]} == {"ingestor", "stager", "curator"}
    assert body["dead_letter_total"] == sum(body["dead_letters"].values())


def test_roles_and_validation_of_the_data_endpoints(http, run, viewer_key):
    viewer = {"Authorization": f"Bearer {viewer_key}"}
    for path in ("/raw", "/staging", "/pipeline"):
        assert http.get(path).status_code == 401
        assert http.get(path, headers=viewer).status_code == 403, path
    assert http.get("/curated", params=ONE_WEEK, headers=viewer).status_code == 200
    for params in (
        {"limit": 1001},
        {"sentiment": "happy"},
        {"start_date": "2020-13-01"},
        {"cursor": "x"},
        {"company": "$where"},
        {"start_date": "2020-10-02", "end_date": "2020-10-01"},
    ):
        answer = http.get("/curated", params=params, headers=viewer)
        assert answer.status_code == 422, params
        assert answer.json()["error"]["code"] == "invalid_request"


def test_answers_built_without_a_second_validation_are_exactly_their_models(http, run, analyst):
    # /staging pages, /curated/{id} and /stats skip FastAPI's response validation (answers.py): each
    # real answer must parse as its model and serialise back to the very same JSON.
    from services.gateway.read.stats import Stats
    from services.gateway.read.tweets import CuratedDetail, StagedPage

    first = http.get("/staging", params={"limit": 5, "company": "Apple"}, headers=analyst).json()
    pages = [
        http.get(
            "/staging",
            params={"limit": 5, "company": "Apple", "cursor": first["next_cursor"]},
            headers=analyst,
        ),
        http.get("/staging", params={"sentiment": "negative", "limit": 50}, headers=analyst),
        http.get("/staging", params={"start_date": "2030-01-01", "end_date": "2030-01-02"}, headers=analyst),
    ]
    tid = pages[1].json()["items"][0]["twitter_id"]
    checks: list[tuple[type[BaseModel], httpx.Response]] = [(StagedPage, p) for p in pages] + [
        (CuratedDetail, http.get(f"/curated/{tid}", headers=analyst)),
        (CuratedDetail, http.get(f"/curated/{tid}", params={"include_tokens": False}, headers=analyst)),
        (Stats, http.get("/stats", headers=analyst)),
    ]
    for model, answer in checks:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert json.loads(model.model_validate_json(answer.content).model_dump_json()) == body, model
    assert pages[2].json() == {"items": [], "next_cursor": None}
    assert "tokens" in checks[3][1].json()["document"] and "tokens" not in checks[4][1].json()["document"]
