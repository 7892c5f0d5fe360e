"""``GET /stats``: rows per layer, per company and per sentiment, from maintained counts (never a scan).

The counts are kept per chunk by the services in the same transaction as the rows they describe
(``chunk_progress``, ``chunk_facets``), so they are exact under replays and cost one small
aggregation, whatever the size of the data. (FerretDB answers even ``estimatedDocumentCount`` by
scanning, which is why the curated count comes from the curator's bookkeeping too.)
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.gateway.deps import StoresDep, Viewer
from services.gateway.errors import StoreUnavailable

router = APIRouter(tags=["stats"])


class Stats(BaseModel):
    raw_row_count: int
    staging_row_count: int
    curated_row_count: int
    rejected_row_count: int
    duplicate_row_count: int
    runs: int
    by_company: dict[str, int]
    by_sentiment: dict[str, int]


@router.get("/stats", response_model=Stats, summary="Rows per layer, company and sentiment (all runs)")
async def stats(stores: StoresDep, _: Viewer) -> Stats:
    try:
        async with stores.mysql.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT layer, COALESCE(SUM(raw_rows), 0), COALESCE(SUM(staged_rows), 0),"
                " COALESCE(SUM(rejected_rows), 0), COALESCE(SUM(duplicate_rows), 0),"
                " COALESCE(SUM(curated_docs), 0) FROM chunk_progress GROUP BY layer"
            )
            layers = {row[0]: [int(v) for v in row[1:]] for row in await cur.fetchall()}
            await cur.execute("SELECT facet, value, SUM(n) FROM chunk_facets GROUP BY facet, value")
            facets = await cur.fetchall()
            await cur.execute("SELECT COUNT(*) FROM runs")
            (runs,) = await cur.fetchone()
    except Exception as exc:
        raise StoreUnavailable("mysql", type(exc).__name__) from exc
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
