"""The totals of ``GET /stats`` and the dashboard, from the counts the services maintain per chunk
(``chunk_progress``, ``chunk_facets``): one small aggregation whatever the size of the data,
computed and serialised at most once a second for every caller."""

from __future__ import annotations

from pydantic import BaseModel

from lake.events import COUNT_NAMES
from services.gateway.read.runs import COUNT_LAYER
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
    sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in COUNT_NAMES)
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(f"SELECT layer, {sums} FROM chunk_progress WHERE {OF_RUNS} GROUP BY layer")
        by_layer = {
            row[0]: dict(zip(COUNT_NAMES, map(int, row[1:]), strict=True)) for row in await cur.fetchall()
        }
        await cur.execute(
            f"SELECT facet, value, SUM(n) FROM chunk_facets WHERE {OF_RUNS} GROUP BY facet, value"
        )
        facets = await cur.fetchall()
        await cur.execute("SELECT COUNT(*) FROM runs")
        (runs,) = await cur.fetchone()
    # each count from the layer whose chunks carry it (read.runs.COUNT_LAYER)
    count = {name: by_layer.get(layer, {}).get(name, 0) for name, layer in COUNT_LAYER.items()}
    return Stats(
        raw_row_count=count["raw_rows"],
        staging_row_count=count["staged_rows"],
        curated_row_count=count["curated_docs"],
        rejected_row_count=count["rejected_rows"],
        duplicate_row_count=count["duplicate_rows"],
        runs=int(runs),
        by_company={v: int(n) for f, v, n in facets if f == "company"},
        by_sentiment={v: int(n) for f, v, n in facets if f == "sentiment"},
    )
