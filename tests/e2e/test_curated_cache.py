"""What the gateway serves without reading the document store never outlives the curator's next
change of the document: ``/curated/{id}``'s cache is taken only under the revision the catalogue
names (migration 006), and a page's items are the catalogue's list projection (migration 007),
rewritten with each revision (docs/api.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lake.adapters.curated_catalog import CuratedCatalog
from lake.adapters.curated_repo import CuratedRepository, make_client
from lake.adapters.mysql import connect
from lake.adapters.staging_repo import StagingRepository
from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from tests.e2e.conftest import Services

pytestmark = pytest.mark.e2e
ROWS, SEED = 400, 6061  # a seed no other test ingests: the first ingestion of a tweet wins


def listed(http: httpx.Client, tid: int, day: str) -> dict[str, Any]:
    """The tweet's item on the pages of its day (the cursor walked until it shows)."""
    params: dict[str, Any] = {"start_date": day, "end_date": day, "limit": 100}
    for _ in range(200):
        page = http.get("/curated", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        for item in body["items"]:
            if item["twitter_id"] == str(tid):
                return dict(item)
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    raise AssertionError(f"tweet {tid} is not listed on {day}")


def test_cached_answers_and_list_items_follow_the_curators_revisions(services: Services, settings: Settings):
    run = request_run(settings, GeneratedSource(rows=ROWS, seed=SEED, malformed_share=0.0), "e2e-cache")
    summary = wait_for_run(settings, run, timeout=180, expected_rows=ROWS)
    assert summary["status"] == "succeeded" and summary["curated_docs"] > 0, summary
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT twitter_id, DATE(created_at) FROM tweets WHERE run_id = %s ORDER BY twitter_id LIMIT 1",
            (run,),
        )
        row = cur.fetchone()
    assert row is not None
    tid, day = int(row[0]), row[1].isoformat()
    key = create_key(settings, "e2e cache", "viewer")
    client = make_client(settings.mongo)
    curated = CuratedRepository(client, settings.mongo)
    repo = StagingRepository(settings.mysql)
    stored = curated.tweets.find_one({"_id": str(tid)})
    assert stored is not None
    try:
        with httpx.Client(
            base_url=services.gateway, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            before = listed(http, tid, day)  # the list projection
            # a tweet catalogued before the projection existed (no item): read from the store
            with repo.conn.cursor() as cur:
                cur.execute("SELECT item FROM curated_tweets WHERE twitter_id = %s", (tid,))
                (item,) = cur.fetchone() or (None,)
                cur.execute("UPDATE curated_tweets SET item = NULL WHERE twitter_id = %s", (tid,))
            repo.conn.commit()
            assert item is not None and listed(http, tid, day) == before
            with repo.conn.cursor() as cur:
                cur.execute("UPDATE curated_tweets SET item = %s WHERE twitter_id = %s", (item, tid))
            repo.conn.commit()
            detail = http.get(f"/curated/{tid}").json()  # read from the store, now cached
            assert {**detail["document"], "tokens": None} == {**before, "tokens": None}
            # changed behind the curator's back: the catalogue's revision does not move
            curated.tweets.update_one({"_id": str(tid)}, {"$set": {"text": "changed in the store only"}})
            assert listed(http, tid, day) == before  # the projection answered, not the store
            assert http.get(f"/curated/{tid}").json() == detail  # the cache answered
            # a form of the document not cached yet is read from the store
            fresh = http.get(f"/curated/{tid}", params={"include_tokens": "false"}).json()
            assert fresh["document"]["text"] == "changed in the store only"

            # the run finaliser's way of adding a company: the document first, then the catalogue
            companies = sorted({*before["companies"], "Zeta Corp"})
            assert curated.set_companies({tid: companies}) == 1
            CuratedCatalog(repo).add_companies({tid: companies})
            after = listed(http, tid, day)  # the item was rewritten with the document's companies
            assert after["companies"] == companies
            assert after["text"] == before["text"]  # a change the curator never made never shows
            now = http.get(f"/curated/{tid}").json()  # a new revision: read from the store again
            assert (now["document"]["companies"], now["document"]["text"]) == (
                companies,
                "changed in the store only",
            )
            assert now["staged"] == detail["staged"] and now["lineage"] == detail["lineage"]
            unchanged = ("companies", "text")
            assert {k: v for k, v in after.items() if k not in unchanged} == {
                k: v for k, v in before.items() if k not in unchanged
            }
    finally:  # the namespace's other tests compare pages with the documents: put this one back
        curated.tweets.replace_one({"_id": str(tid)}, stored)
        CuratedCatalog(repo).add_companies({tid: stored["companies"]})  # its item too, a new revision
        repo.close()
        client.close()
