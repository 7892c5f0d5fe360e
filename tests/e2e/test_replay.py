"""Finished runs replayed (docs/api.md, "Recovery"): from the curate layer after a vocabulary
change, every document of the run gets the new token ids and vocabulary hash and no count changes;
from the stage layer after a cleaning rule changed, staging and curated hold the new result and
the counts reconcile. Every layer still holds exactly the run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest

from lake.adapters.mysql import connect
from lake.adapters.objectstore import S3ObjectStore
from lake.cli import create_key, wait_for_run
from lake.events import GeneratedSource
from lake.runs import request_run
from lake.settings import Settings
from lake.transform.curated_store import unpack_ids
from lake.transform.tokenize import _bundled_bert_uncased, load_tokenizer
from tests.e2e.conftest import Services
from tests.e2e.test_crash_recovery import assert_every_layer_holds_exactly

pytestmark = pytest.mark.e2e
ROWS = 3000
CURATORS = ("curator-1", "curator-2")
STAGERS = ("stager-1", "stager-2")


def swapped_vocabulary(folder: Path) -> Path:
    """bert-base-uncased's vocabulary with [CLS] and [SEP] swapped: every tweet's ids change."""
    bundled = _bundled_bert_uncased()
    assert bundled is not None
    lines = (bundled / "vocab.txt").read_text(encoding="utf-8").splitlines()
    cls, sep = lines.index("[CLS]"), lines.index("[SEP]")
    lines[cls], lines[sep] = lines[sep], lines[cls]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def restart_curators(services: Services, **env: str) -> None:
    for name in CURATORS:
        services.stop(name)
        services.start(name, "services.curator", **env)


def restart_stagers(services: Services, **env: str) -> None:
    for name in STAGERS:
        services.stop(name)
        services.start(name, "services.stager", **env)


def run_documents(settings: Settings, run_id: str) -> dict[str, dict[str, Any]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url)
    try:
        coll = client[settings.mongo.database][settings.mongo.collection]
        return {d["_id"]: d for d in coll.find({"lineage.run_id": run_id})}
    finally:
        client.close()


def test_a_replay_from_curate_after_a_vocabulary_change_rewrites_every_document_and_no_count(
    services: Services, settings: Settings, tmp_path: Path
):
    run_id = request_run(settings, GeneratedSource(rows=ROWS, seed=8118), "e2e-replay")
    before = wait_for_run(settings, run_id, timeout=240, expected_rows=ROWS)
    assert before["status"] == "succeeded", before
    old_docs = run_documents(settings, run_id)
    assert len(old_docs) == before["curated_docs"]
    store = S3ObjectStore.from_settings(settings.s3)
    old_parquet = sorted(
        o["Key"]
        for o in store.list_keys(settings.s3.curated_bucket, "tweets/")
        if f"/{run_id}-part-" in o["Key"]
    )
    vocab = swapped_vocabulary(tmp_path / "bert-swapped")
    new = load_tokenizer(str(vocab), settings.pipeline.max_tokens)
    key = f"{new.name}@{new.vocab_sha256[:16]}"
    admin = create_key(settings, "e2e replay admin", "admin")
    restart_curators(services, LAKE_TOKENIZER=str(vocab))
    try:
        with httpx.Client(
            base_url=services.gateway, timeout=60, headers={"Authorization": f"Bearer {admin}"}
        ) as http:
            refused = http.post(f"/runs/{run_id}/replay", json={"from": "raw"})
            assert refused.status_code == 422  # curate or stage only
            assert (
                http.post("/runs/20990101T000000Z-00000000/replay", json={"from": "curate"}).status_code
                == 404
            )
            answer = http.post(f"/runs/{run_id}/replay", json={"from": "curate"})
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"run_id": run_id, "from": "curate", "chunks": before["raw_rows"] // 1500}
            # the run is `running` from the moment the replay is accepted
            busy = http.post(f"/runs/{run_id}/replay", json={"from": "curate"})
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "conflict", busy.text
            after = wait_for_run(settings, run_id, timeout=240, expected_rows=ROWS)
            assert after["status"] == "succeeded", after
            for name in ("raw_rows", "rejected_rows", "duplicate_rows", "staged_rows", "curated_docs"):
                assert after[name] == before[name], name
            assert_every_layer_holds_exactly(settings, after, ROWS)

            docs = run_documents(settings, run_id)
            assert set(docs) == set(old_docs)
            assert all(d["tokenizer"] == key for d in docs.values())
            changed = [
                tid
                for tid, d in docs.items()
                if unpack_ids(d["tok"], 2) != unpack_ids(old_docs[tid]["tok"], 2)
            ]
            assert len(changed) == len(docs)  # [CLS] and [SEP] open and close every tweet
            tid = sorted(docs)[0]
            shown = http.get(f"/curated/{tid}").json()["document"]["tokens"]
            assert shown["vocab_sha256"] == new.vocab_sha256 and shown["tokenizer"] == new.name
            assert shown["ids"] == unpack_ids(docs[tid]["tok"], 2)
            assert shown["ids"][0] == new.tokenizer.token_to_id("[CLS]") == 102  # where [SEP] was
            report = http.get(f"/runs/{run_id}").json()
            assert "replayed" in [h["event"] for h in report["history"]]
            new_parquet = sorted(
                o["Key"]
                for o in store.list_keys(settings.s3.curated_bucket, "tweets/")
                if f"/{run_id}-part-" in o["Key"]
            )
            assert new_parquet == old_parquet  # rewritten in place, none left over
    finally:
        restart_curators(services)
        time.sleep(1)


def test_a_replay_from_stage_after_a_rule_change_is_reflected_in_staging_and_curated(
    services: Services, settings: Settings
):
    run_id = request_run(settings, GeneratedSource(rows=ROWS, seed=8228), "e2e-replay-stage")
    before = wait_for_run(settings, run_id, timeout=240, expected_rows=ROWS)
    assert before["status"] == "succeeded", before
    old_docs = run_documents(settings, run_id)
    admin = create_key(settings, "e2e stage replay admin", "admin")
    # New rules: sentiment thresholds at +-0.4 (VADER's are +-0.05), and no tweet whose clean
    # text is shorter than 60 characters.
    restart_stagers(
        services,
        LAKE_SENTIMENT_POSITIVE="0.4",
        LAKE_SENTIMENT_NEGATIVE="-0.4",
        LAKE_MIN_CLEAN_TEXT_CHARS="60",
    )
    try:
        with httpx.Client(
            base_url=services.gateway, timeout=60, headers={"Authorization": f"Bearer {admin}"}
        ) as http:
            answer = http.post(f"/runs/{run_id}/replay", json={"from": "stage"})
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"run_id": run_id, "from": "stage", "chunks": -(-ROWS // 1500)}
            busy = http.post(f"/runs/{run_id}/replay", json={"from": "stage"})
            assert busy.status_code == 409, busy.text
            after = wait_for_run(settings, run_id, timeout=240, expected_rows=ROWS)
            assert after["status"] == "succeeded", after
            assert after["raw_rows"] == before["raw_rows"]
            assert after["staged_rows"] < before["staged_rows"]
            assert after["rejected_rows"] > before["rejected_rows"]
            assert_every_layer_holds_exactly(settings, after, ROWS)
            docs = run_documents(settings, run_id)
            assert len(docs) == after["staged_rows"] and set(docs) < set(old_docs)

            # Every staged tweet of the run follows the new rules...
            with connect(settings.mysql) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT twitter_id, polarity, sentiment, CHAR_LENGTH(clean_text) FROM tweets"
                    " WHERE run_id = %s",
                    (run_id,),
                )
                staged = {str(t): (float(p), s, n) for t, p, s, n in cur.fetchall()}
            assert set(staged) == set(docs)
            for tid, (polarity, sentiment, chars) in staged.items():
                want = "positive" if polarity >= 0.4 else "negative" if polarity <= -0.4 else "neutral"
                assert (sentiment, docs[tid]["sentiment"]) == (want, want) and chars >= 60, tid
            # ... and the API shows it on both layers: a tweet positive under the old thresholds is
            # neutral now; a tweet whose clean text is too short has left both.
            moved = sorted(t for t, (p, _, _) in staged.items() if 0.05 <= p < 0.4)
            assert moved
            for tid in moved[:5]:
                assert old_docs[tid]["sentiment"] == "positive"
                assert http.get(f"/staging/{tid}").json()["sentiment"] == "neutral"
                assert http.get(f"/curated/{tid}").json()["document"]["sentiment"] == "neutral"
            gone = sorted(set(old_docs) - set(docs))
            assert http.get(f"/curated/{gone[0]}").status_code == 404
            assert http.get(f"/staging/{gone[0]}").status_code == 404
            report = http.get(f"/runs/{run_id}").json()
            assert [h["event"] for h in report["history"]] == ["replayed"]
            assert report["history"][0]["detail"].startswith("from stage")
    finally:
        restart_stagers(services)
        time.sleep(1)
