"""/curated and /staging list pages equal a brute-force filter and sort of the same documents in
Python, for every filter alone and combined, both sorts, walked with the cursor to the end; a page
the gateway refuses as ``query_too_costly`` is refused only when its matches really are sparser
than the documented bound (docs/api.md)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pymongo
import pytest
from fastapi.testclient import TestClient
from pydantic_core import from_json, to_json

from lake.adapters.mysql import connect
from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from lake.transform.curated_store import STAGED_ADDS, Staged, api_document
from services.gateway.app import create_app
from tests.e2e.conftest import Services, own_namespace

pytestmark = pytest.mark.e2e
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def lists(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Services on a namespace of this module's own: its pages and its brute force then cover this
    module's documents only, not the ≈ 150k every earlier module left in the suite's namespace."""
    with own_namespace(settings, "lists", tmp_path_factory.mktemp("lists-logs")) as svc:
        yield svc


@pytest.fixture(scope="module")
def docs(lists: Services) -> list[Doc]:
    """A run of its own (a few thousand documents), then every curated document of the namespace."""
    settings = lists.settings
    run_id = request_run(settings, GeneratedSource(rows=4000, seed=5150), "e2e-list-queries")
    summary = wait_for_run(settings, run_id, timeout=240, expected_rows=4000)
    assert summary["status"] == "succeeded", summary
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(settings.mongo.url, tz_aware=True)
    try:
        found = list(client[settings.mongo.database][settings.mongo.collection].find({}, {"tokens": 0}))
    finally:
        client.close()
    assert len(found) == summary["staged_rows"] > 3900
    with connect(settings.mysql) as conn, conn.cursor() as cur:  # what the staged rows add to each
        cur.execute(f"SELECT t.twitter_id, {STAGED_ADDS} FROM tweets t")
        adds = {str(t): Staged(*staged) for t, *staged in cur.fetchall()}
    for d in found:
        d["_staged"] = adds[d["_id"]]
        d["hashtags"] = api_document(d, d["_staged"], {}, include_tokens=False)["hashtags"]  # as shown
    return found


@pytest.fixture(scope="module")
def http(lists: Services) -> Any:
    key = create_key(lists.settings, "e2e list queries", "analyst")
    with httpx.Client(base_url=lists.gateway, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        yield c


@pytest.fixture(scope="module")
def viewer_key(lists: Services) -> str:
    return create_key(lists.settings, "e2e list queries viewer", "viewer")


def fold(text: str) -> str:
    """How MySQL's utf8mb4_unicode_ci compares letters: without case and accents."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


def matcher(p: dict[str, Any]) -> tuple[Callable[[Doc], bool], Callable[[Doc], bool]]:
    """(every filter, the filters the driving index answers by itself): docs/api.md's rules."""
    start = datetime.combine(date.fromisoformat(p["start_date"]), time(), UTC) if "start_date" in p else None
    end = (
        datetime.combine(date.fromisoformat(p["end_date"]) + timedelta(days=1), time(), UTC)
        if "end_date" in p
        else None
    )

    def in_range(d: Doc) -> bool:
        at: datetime = d["created_at"]
        return (start is None or at >= start) and (end is None or at < end)

    def served(d: Doc) -> bool:
        if not in_range(d):
            return False
        same_sentiment = bool(p.get("sentiment", d["sentiment"]) == d["sentiment"])
        if "company" in p:
            return p["company"] in d["companies"] and same_sentiment
        if "hashtag" in p:
            return p["hashtag"] in d["hashtags"]
        return same_sentiment

    def every(d: Doc) -> bool:
        return (
            served(d)
            and p.get("sentiment", d["sentiment"]) == d["sentiment"]
            and ("hashtag" not in p or p["hashtag"] in d["hashtags"])
            and d["followers"] >= p.get("min_followers", 0)
            and ("q" not in p or fold(p["q"]) in fold(d["text"]))
        )

    return every, served


ORDERS: dict[tuple[int, bool], list[Doc]] = {}


def ordered(docs: list[Doc], descending: bool) -> list[Doc]:
    """The documents in page order (computed once per direction)."""
    key = (id(docs), descending)
    if key not in ORDERS:
        ORDERS[key] = sorted(docs, key=lambda d: (d["created_at"], int(d["_id"])), reverse=descending)
    return ORDERS[key]


def walk(http: httpx.Client, layer: str, p: dict[str, Any], docs: list[Doc], per_item: int) -> str:
    """Walk every page of ``p`` (pages of 1,000 unless ``p`` says) and compare each with the brute
    force: every item's id, time, sentiment, followers and text; on the first page, every field.
    'complete' or 'refused'."""
    every, served = matcher(p)
    descending = p.get("sort", "-created_at").startswith("-")
    order = ordered(docs, descending)
    expected = [d for d in order if every(d)]
    params = {**p, "limit": p.get("limit", 1000)}
    limit, seen = params["limit"], 0
    after: Doc | None = None
    while True:
        answer = http.get(f"/{layer}", params=params)
        if answer.status_code == 422:
            assert answer.json()["error"]["code"] == "query_too_costly", answer.text
            # justified only if the index walk's budget holds fewer matches than the page needs
            # and the followers index could not serve it instead
            rest = [d for d in order if served(d) and (after is None or _beyond(d, after, descending))]
            budget = per_item * (limit + 1)
            assert sum(1 for d in rest[:budget] if every(d)) < limit + 1 and len(rest) > budget, p
            few = sum(1 for d in docs if d["followers"] >= p.get("min_followers", 10**12)) <= budget
            assert not few, p
            return "refused"
        assert answer.status_code == 200, answer.text
        body = from_json(answer.content)
        want = expected[seen : seen + limit]
        assert [i["twitter_id"] for i in body["items"]] == [d["_id"] for d in want], (layer, p, seen)
        for item, doc in zip(body["items"], want, strict=True):
            assert datetime.fromisoformat(item["created_at"]) == doc["created_at"]
            assert (item["sentiment"], item["followers"], item["text"]) == (
                doc["sentiment"],
                doc["followers"],
                doc["text"],
            )
            if layer == "curated" and seen == 0:  # every field as the document store holds it
                stored = from_json(to_json(api_document(doc, doc["_staged"], {}, include_tokens=False)))
                assert item == stored, (p, doc["_id"])
        seen += len(want)
        if body["next_cursor"] is None:
            assert seen == len(expected), (layer, p)
            return "complete"
        assert len(want) == limit
        after = want[-1]
        params["cursor"] = body["next_cursor"]


def _beyond(d: Doc, after: Doc, descending: bool) -> bool:
    key, last = (d["created_at"], int(d["_id"])), (after["created_at"], int(after["_id"]))
    return key < last if descending else key > last


def test_every_filter_alone_and_combined_equals_a_brute_force_of_the_documents(http, docs, lists):
    companies = Counter(c for d in docs for c in d["companies"])
    hashtags = Counter(h for d in docs for h in d["hashtags"])
    words = Counter(w for d in docs for w in set(re.findall(r"[a-z]{5,}", d["text"].lower())))
    company, hashtag, word = (
        companies.most_common(1)[0][0],
        hashtags.most_common(1)[0][0],
        words.most_common(1)[0][0],
    )
    rare_tag = min(hashtags, key=lambda h: (abs(hashtags[h] - 10), h))  # about 10 tweets
    days = sorted({d["created_at"].date() for d in docs})
    week = {
        "start_date": str(days[len(days) // 2]),
        "end_date": str(days[len(days) // 2] + timedelta(days=6)),
    }
    followers = sorted(d["followers"] for d in docs)
    many, few = followers[len(followers) // 2], followers[-30]  # half of them; the top 30
    cases: list[dict[str, Any]] = [
        {"limit": 1000},
        week,
        {"start_date": week["start_date"]},
        {"end_date": week["end_date"], "limit": 500},
        {"sentiment": "negative", "limit": 500},
        {"company": company, "limit": 500},
        {"hashtag": hashtag},
        {"hashtag": rare_tag, "limit": 3},
        {"min_followers": many, "limit": 500},
        {"min_followers": few, "limit": 7},
        {"q": word, "limit": 200},
        {"company": company, "sentiment": "positive", **week},
        {"company": company, "hashtag": hashtag},
        {"hashtag": hashtag, "sentiment": "neutral"},
        {"company": company, "q": word, "limit": 50},
        {"sentiment": "negative", "min_followers": many, **week},
        {"company": company, "min_followers": few, "limit": 5},
        {
            "company": company,
            "hashtag": hashtag,
            "sentiment": "positive",
            "min_followers": many,
            "q": word,
            **week,
        },
    ]
    per_item = lists.settings.gateway.scan_rows_per_item
    outcomes: Counter[str] = Counter()
    for case in cases:
        for sort in ("-created_at", "created_at"):
            results = {
                layer: walk(http, layer, {**case, "sort": sort}, docs, per_item)
                for layer in ("staging", "curated")
            }
            assert results["staging"] == results["curated"], case  # one planner: the same answers
            outcomes[results["curated"]] += 1
    assert outcomes["complete"] >= len(cases) * 2 - 4, outcomes  # sparse combinations may be refused


def test_a_sparse_filter_is_refused_at_once_with_what_to_do(http, docs, lists):
    # a text that no tweet holds, over the whole namespace: the walk stops at its bound
    answer = http.get("/curated", params={"q": "zzqqxxjj", "limit": 10})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "query_too_costly" and "narrow it" in error["message"]
    # the same narrowed to a day whose tweets fit in a 1,000-item page's bound is answered: empty
    per_day = Counter(d["created_at"].date() for d in docs)
    day, n = min(per_day.items(), key=lambda kv: (kv[1], kv[0]))
    assert n < lists.settings.gateway.scan_rows_per_item * 1001
    narrow = {"q": "zzqqxxjj", "start_date": str(day), "end_date": str(day), "limit": 1000}
    answer = http.get("/curated", params=narrow)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"items": [], "next_cursor": None}


def test_the_reference_implementations_documented_calls_answer(http, docs):
    # shared/DESIGN.md §6: what its clients call (at 1.13M documents: make bench-api, curated-latest)
    curated = http.get("/curated", params={"limit": 10})
    assert curated.status_code == 200 and len(curated.json()["items"]) == 10
    newest = max(docs, key=lambda d: (d["created_at"], int(d["_id"])))
    assert curated.json()["items"][0]["twitter_id"] == newest["_id"]
    day = str(newest["created_at"].date())
    staged = http.get("/staging", params={"start_date": day, "end_date": day, "sentiment": "positive"})
    assert staged.status_code == 200
    assert staged.json()["items"] and all(i["sentiment"] == "positive" for i in staged.json()["items"])


def test_the_hot_routes_answer_as_fastapis_own_routes_do(http, docs, lists, viewer_key):
    """The running gateway serves /staging, /curated and /curated/{id} from ``HotRoutes``; the same
    app built with ``hot_routes=False`` serves them through FastAPI. Every answer, refusals and
    errors included, is the same: status, body, and the headers a client reads."""
    newest = max(docs, key=lambda d: (d["created_at"], int(d["_id"])))
    day = str(newest["created_at"].date())
    analyst = dict(http.headers)
    viewer = {"Authorization": f"Bearer {viewer_key}"}
    first = http.get("/staging", params={"start_date": day, "end_date": day, "limit": 3}).json()
    assert first["next_cursor"]
    requests: list[tuple[str, dict[str, str]]] = [
        (f"/staging?start_date={day}&end_date={day}&limit=3", analyst),
        (f"/staging?start_date={day}&end_date={day}&limit=3&cursor={first['next_cursor']}", analyst),
        (f"/staging?sentiment=positive&company=Apple&sort=created_at&limit=7&start_date={day}", analyst),
        ("/staging?limit=3&limit=4&unknown=1", analyst),  # the last value of a repeated parameter
        ("/curated?limit=10", viewer),
        (f"/curated?limit=2&include_tokens=true&start_date={day}", viewer),
        (f"/curated/{newest['_id']}", viewer),
        (f"/curated/{newest['_id']}?include_tokens=off", viewer),
        (f"/curated/{newest['_id']}?include_tokens=0", analyst),
        # refusals and errors
        ("/staging?limit=3", viewer),  # 403: staging needs an analyst
        ("/staging?limit=3", {}),  # 401
        ("/curated?limit=3", {"Authorization": "Bearer lk_nope_nope"}),  # 401
        ("/curated?limit=3", {"Authorization": "Basic abc"}),  # 401
        ("/staging?limit=0", analyst),
        ("/staging?limit=3&cursor=not-a-cursor", analyst),
        ("/staging?start_date=2020-02-30", analyst),
        ("/staging?start_date=2020-09-02&end_date=2020-09-01", analyst),
        ("/staging?sentiment=glad&company=%3Cscript%3E", analyst),
        ("/curated?include_tokens=banana&limit=3", viewer),
        ("/curated?q=zzqqxxjj&limit=10", viewer),  # 422 query_too_costly, from the page's own code
        ("/curated/abc", viewer),
        ("/curated/1", viewer),  # 404
        (f"/curated/{newest['_id']}?include_tokens=maybe", viewer),
        ("/curated/", viewer),
        ("/staging/", analyst),
    ]
    app = create_app(lists.settings, hot_routes=False)
    with (
        TestClient(app, raise_server_exceptions=False, follow_redirects=False) as plain,
        httpx.Client(base_url=http.base_url, timeout=60) as live,  # no default key
    ):
        for target, headers in requests:
            hot, framework = live.get(target, headers=headers), plain.get(target, headers=headers)
            assert hot.status_code == framework.status_code, target
            assert hot.content == framework.content, target
            for name in ("content-type", "www-authenticate", "x-content-type-options", "cache-control"):
                assert hot.headers.get(name) == framework.headers.get(name), (target, name)
        statuses = {live.get(t, headers=h).status_code for t, h in requests}
    assert statuses >= {200, 401, 403, 404, 422}
