"""Staging a chunk is exact and idempotent: replays, duplicates across chunks, concurrent replicas."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lake.adapters.run_ledger import RunLedger
from lake.adapters.staging_repo import StagingRepository
from lake.settings import Settings
from lake.transform.stage import staged_frame


def rows(ids: list[int], company: str = "Apple", run_id: str = "", chunk_id: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "twitter_id": tid,
            "created_at": datetime(2020, 7, 12, 10, tzinfo=UTC),
            "company": company,
            "screenname": "s",
            "username": "u 😀",
            "location": None,
            "followers": 1,
            "friends": 2,
            "retweet_count": 0,
            "search_query": f"#{company}",
            "text": f"t {tid} #x",
            "clean_text": f"t {tid} x",
            "polarity": 0.1,
            "sentiment": "positive",
            "run_id": run_id,
            "chunk_id": chunk_id,
            "raw_key": "k",
            "record_no": i + 1,
        }
        for i, tid in enumerate(ids)
    ]


def stage(
    repo: StagingRepository,
    run_id: str,
    chunk_id: int,
    ids: list[int],
    company: str = "Apple",
    rejects: int = 0,
) -> tuple[int, int, int, int]:
    unique = list(dict.fromkeys(ids))
    result = repo.stage_chunk(
        run_id,
        chunk_id,
        "k",
        len(ids) + rejects,
        staged_frame(rows(unique, company, run_id, chunk_id)),
        [(tid, company, i + 1) for i, tid in enumerate(ids)],
        [(len(ids) + j + 1, "invalid_polarity", "polarity", "7") for j in range(rejects)],
        {tid: ["x"] for tid in unique},
        datetime.now(UTC),
    )
    return result.raw_rows, result.rejected_rows, result.duplicate_rows, result.staged_rows


def new_ids(n: int) -> list[int]:
    base = 1_300_000_000_000_000_000 + uuid.uuid4().int % 10**15 * 1000
    return [base + i for i in range(n)]


def test_a_replayed_chunk_gets_the_same_counts_and_adds_nothing(repo: StagingRepository, ledger: RunLedger):
    run = f"t-{uuid.uuid4().hex[:8]}"
    ids = new_ids(50)
    first = stage(repo, run, 0, ids + ids[:5], rejects=2)
    assert first == (57, 2, 5, 50)
    assert stage(repo, run, 0, ids + ids[:5], rejects=2) == first
    assert ledger.run_counts(run) == {
        "raw_rows": 0,
        "rejected_rows": 2,
        "duplicate_rows": 5,
        "staged_rows": 50,
        "curated_docs": 0,
    }


def test_the_first_ingestion_wins_across_chunks_and_runs_and_a_new_company_is_linked(
    repo: StagingRepository, settings: Settings
):
    run1, run2 = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    ids = new_ids(20)
    assert stage(repo, run1, 0, ids[:10]) == (10, 0, 0, 10)
    assert stage(repo, run1, 1, ids[5:15]) == (10, 0, 5, 5)
    assert stage(repo, run2, 0, ids, company="Google") == (20, 0, 15, 5)
    with repo.conn.cursor() as cur:
        cur.execute("SELECT run_id, chunk_id, company FROM tweets WHERE twitter_id = %s", (ids[0],))
        assert cur.fetchone() == (run1, 0, "Apple")  # never overwritten
    assert repo.companies_of([ids[0]]) == {ids[0]: ["Apple", "Google"]}
    # the curator's read: only the chunk's tweets linked to more than their own company
    assert repo.other_companies(run1, 0) == {t: ["Apple", "Google"] for t in ids[:10]}
    assert repo.other_companies(run1, 1) == {t: ["Apple", "Google"] for t in ids[10:15]}
    assert repo.other_companies(run2, 0) == {}  # ids[15:] have Google alone, their own
    assert repo.companies_of(ids[15:]) == {t: ["Google"] for t in ids[15:]}


def recorded(repo: StagingRepository, monkeypatch, call: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements (SQL, arguments) ``call`` runs on ``repo``'s connection."""
    seen: list[tuple[str, Any]] = []
    real = repo.conn.cursor

    class Recording:
        def __init__(self) -> None:
            self.cur = real()

        def __enter__(self) -> Recording:
            self.cur.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self.cur.__exit__(*exc)

        def execute(self, sql: str, args: Any = None) -> Any:
            seen.append((sql, args))
            return self.cur.execute(sql, args)

        def fetchall(self) -> Any:
            return self.cur.fetchall()

    monkeypatch.setattr(repo.conn, "cursor", Recording)
    call()
    monkeypatch.undo()
    return seen


def plan_of(cur: Any, sql: str, args: Any) -> list[tuple[str, str, str]]:
    """(table, access type, key) of each table in ``EXPLAIN sql``."""
    cur.execute("EXPLAIN " + sql, args)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return [(r["table"], r["type"], r["key"]) for r in rows]


def test_a_chunks_other_companies_are_read_from_its_tweets_whatever_the_statistics(
    repo: StagingRepository, monkeypatch
):
    """With the statistics a bulk load left, MariaDB read ``other_companies``' join from the whole
    of ``tweet_companies`` (2.6-3.0 s a chunk at 1.13M rows, against 0.2-0.3 s). Statistics that
    make that plan look cheapest are set here (each tweet's links look like thousands, a chunk's
    tweets like the whole table); the chunk's tweets are still read first, by their lineage.

    Under them, this test alone, the statement without its hints walked ``tweet_companies``, and
    with ``STRAIGHT_JOIN`` alone it walked all of ``tweets`` by primary key; what the optimizer
    picks without hints depends on the tables' other rows too, so only the hinted plan is checked."""
    run = f"t-{uuid.uuid4().hex[:8]}"
    ids = new_ids(20)
    stage(repo, run, 0, ids[:10])
    stage(repo, run, 1, ids, company="Google")
    statements = recorded(repo, monkeypatch, lambda: repo.other_companies(run, 0))
    sql, args = next((sql, args) for sql, args in statements if "JOIN" in sql)
    adversarial = {
        ("tweet_companies", "PRIMARY", "n_diff_pfx01"): 1,
        ("tweets", "ix_tweets_lineage", "n_diff_pfx02"): 1,
    }
    with repo.conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 30")  # FLUSH TABLES waits for open transactions
        try:
            for (table, index, stat), value in adversarial.items():
                where = (
                    " WHERE database_name = DATABASE() AND table_name = %s"
                    " AND index_name = %s AND stat_name = %s"
                )
                cur.execute(
                    "UPDATE mysql.innodb_index_stats SET stat_value = %s" + where, (value, table, index, stat)
                )
                cur.execute("SELECT stat_value FROM mysql.innodb_index_stats" + where, (table, index, stat))
                assert cur.fetchall() == ((value,),), (table, index, stat)
            cur.execute("FLUSH TABLES tweets, tweet_companies")  # the stored statistics, read again
            plan = plan_of(cur, sql, args)
        finally:
            cur.execute("ANALYZE TABLE tweets, tweet_companies")  # statistics measured again
            cur.fetchall()
    assert plan == [("t", "ref", "ix_tweets_lineage"), ("tc", "ref", "PRIMARY")], plan
    assert repo.other_companies(run, 0) == {t: ["Apple", "Google"] for t in ids[:10]}


def test_the_ids_a_chunk_owns_are_exact_when_the_server_cuts_their_list_short(
    repo: StagingRepository, monkeypatch
):
    """A chunk that finds some of its ids staged reads the ids it owns back as one list; when
    the server cuts that list short, they are read row by row: the same counts."""
    run = f"t-{uuid.uuid4().hex[:8]}"
    ids = new_ids(30)
    assert stage(repo, run, 0, ids[:10]) == (10, 0, 0, 10)
    monkeypatch.setattr(StagingRepository, "OWNED_LIST_BYTES", 30)  # room for one or two ids
    assert stage(repo, run, 1, ids[5:30]) == (25, 0, 5, 20)
    with repo.conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tweets WHERE run_id = %s AND chunk_id = 1", (run,))
        assert cur.fetchone() == (20,)


def test_links_carry_the_kept_tweets_time_and_sentiment_even_when_a_later_record_differs(
    repo: StagingRepository,
):
    run1, run2 = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    ids = new_ids(6)
    assert stage(repo, run1, 0, ids[:4]) == (4, 0, 0, 4)
    later = rows(ids, "Google", run2, 0)  # the same tweets seen again, with other values
    for r in later:
        r["created_at"], r["sentiment"] = datetime(2020, 9, 1, 8, tzinfo=UTC), "negative"
    result = repo.stage_chunk(
        run2,
        0,
        "k",
        6,
        staged_frame(later),
        [(t, "Google", i + 1) for i, t in enumerate(ids)],
        [],
        {},
        datetime.now(UTC),
    )
    assert (result.duplicate_rows, result.staged_rows) == (4, 2)
    with repo.conn.cursor() as cur:
        cur.execute(
            "SELECT tc.twitter_id, tc.company, tc.created_at, tc.sentiment, t.created_at, t.sentiment"
            " FROM tweet_companies tc JOIN tweets t ON t.twitter_id = tc.twitter_id"
            f" WHERE tc.twitter_id IN ({', '.join(['%s'] * len(ids))}) ORDER BY 1, 2",
            ids,
        )
        links = cur.fetchall()
    repo.conn.commit()
    assert len(links) == 10  # 4 Apple + 6 Google
    first, later_values = (datetime(2020, 7, 12, 10), "positive"), (datetime(2020, 9, 1, 8), "negative")
    for tid, _company, tc_time, tc_sentiment, t_time, t_sentiment in links:
        assert (tc_time, tc_sentiment) == (t_time, t_sentiment)
        assert (t_time, t_sentiment) == (first if tid in ids[:4] else later_values)  # the first one kept


def test_two_replicas_staging_overlapping_chunks_at_once_count_exactly(settings: Settings):
    run = f"t-{uuid.uuid4().hex[:8]}"
    ids = new_ids(3000)
    chunks = [ids[0:2000], ids[1000:3000]]  # 1000 ids in both
    results: dict[int, tuple[int, int, int, int]] = {}

    def work(i: int) -> None:
        r = StagingRepository(settings.mysql)
        try:
            results[i] = stage(r, run, i, chunks[i])
        finally:
            r.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    staged = results[0][3] + results[1][3]
    duplicates = results[0][2] + results[1][2]
    assert staged == 3000 and duplicates == 1000


def test_bulk_load_keeps_escapes_verbatim_and_refuses_values_the_server_would_change(settings: Settings):
    repo = StagingRepository(settings.mysql)
    run_id = f"esc-{uuid.uuid4().hex[:6]}"
    try:
        [tid] = new_ids(1)
        row = rows([tid], run_id=run_id)[0]
        row.update(text="tab\there\nnew line \\N back\\slash \r and NUL\x00 😀", location="\\N")
        repo.stage_chunk(
            run_id, 0, "k", 1, staged_frame([row]), [(tid, "Apple", 1)], [], {tid: ["x"]}, datetime.now(UTC)
        )
        with repo.conn.cursor() as cur:
            cur.execute("SELECT text, location FROM tweets WHERE twitter_id = %s", (tid,))
            assert cur.fetchone() == (row["text"], "\\N")
        repo.conn.commit()
        [other] = new_ids(1)
        bad = rows([other], run_id=run_id)[0] | {"location": "x" * 300}  # over VARCHAR(255)
        try:
            repo.stage_chunk(
                run_id, 1, "k", 1, staged_frame([bad]), [(other, "Apple", 1)], [], {}, datetime.now(UTC)
            )
        except ValueError as exc:
            assert "values changed by the server" in str(exc)
        else:
            raise AssertionError("a truncated value was accepted")
        repo.conn.rollback()
        with repo.conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM tweets WHERE twitter_id = %s", (other,))
            assert cur.fetchone() == (0,)
        repo.conn.commit()
    finally:
        repo.close()


def test_a_run_is_requested_then_running_and_a_later_pickup_changes_nothing(
    repo: StagingRepository, ledger: RunLedger
):
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    assert ledger.run_status(run_id) is None
    ledger.record_requested(run_id, {"source": "generated", "rows": 10, "seed": 1}, "gateway")
    assert ledger.run_status(run_id) == ("requested", None)
    ledger.create_run(run_id, {"source": "generated", "rows": 10, "seed": 1}, "gateway")  # taken
    assert ledger.run_status(run_id) == ("running", None)
    with repo.conn.cursor() as cur:
        cur.execute("SELECT requested_by, started_at IS NOT NULL FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("gateway", 1)
    repo.conn.commit()
    ledger.fail_run(run_id, "boom")
    ledger.create_run(run_id, {"source": "generated", "rows": 10, "seed": 1}, "gateway")  # redelivered
    assert ledger.run_status(run_id) == ("failed", "boom")
    # Airflow's runs have no row before the ingestor takes them
    airflow_run = f"bigtech_ingest-{uuid.uuid4().hex[:8]}"
    ledger.create_run(airflow_run, {"source": "generated", "rows": 10, "seed": 1}, "airflow")
    assert ledger.run_status(airflow_run) == ("running", None)
