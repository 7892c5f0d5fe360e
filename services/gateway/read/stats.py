"""The totals of ``GET /stats`` and the dashboard, from the counts the services maintain per chunk
(``chunk_progress``, ``chunk_facets``): one small aggregation whatever the size of the data,
computed and serialised at most once a second for every caller."""

from __future__ import annotations

from pydantic import BaseModel

from services.gateway.stores import Stores

# Counts of recorded runs only: chunks written by a repository driven outside a run (a profiling
# script, a half-restored backup) never inflate the totals.
OF_RUNS = "run_id IN (SELECT run_id FROM runs)"


class Stats(BaseModel):
    raw_row_count: int
    staging_row_count: int
    curated_row_count: int
    rejected_row_count: int
    duplicate_row_count: int
    runs: int
    by_company: dict[str, int]
    by_sentiment: dict[str, int]


async def shared_totals(stores: Stores) -> bytes:
    """The totals as JSON, computed and serialised at most once a second for every caller."""

    async def compute() -> bytes:
        return (await totals(stores)).model_dump_json().encode()

    return await stores.stats.get(compute)


async def totals(stores: Stores) -> Stats:
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT layer, COALESCE(SUM(raw_rows), 0), COALESCE(SUM(staged_rows), 0),"
            " COALESCE(SUM(rejected_rows), 0), COALESCE(SUM(duplicate_rows), 0),"
            f" COALESCE(SUM(curated_docs), 0) FROM chunk_progress WHERE {OF_RUNS} GROUP BY layer"
        )
        layers = {row[0]: [int(v) for v in row[1:]] for row in await cur.fetchall()}
        await cur.execute(
            f"SELECT facet, value, SUM(n) FROM chunk_facets WHERE {OF_RUNS} GROUP BY facet, value"
        )
        facets = await cur.fetchall()
        await cur.execute("SELECT COUNT(*) FROM runs")
        (runs,) = await cur.fetchone()
    raw = layers.get("raw", [0] * 5)
    staged = layers.get("staged", [0] * 5)
    return Stats(
        raw_row_count=raw[0],
        staging_row_count=staged[1],
        curated_row_count=layers.get("curated", [0] * 5)[4],
        rejected_row_count=staged[2],
        duplicate_row_count=staged[3],
        runs=int(runs),
        by_company={v: int(n) for f, v, n in facets if f == "company"},
        by_sentiment={v: int(n) for f, v, n in facets if f == "sentiment"},
    )
