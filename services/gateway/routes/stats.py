"""``GET /stats``: rows per layer, per company and per sentiment, from maintained counts (never a scan).

The counts are kept per chunk by the services in the same transaction as the rows they describe
(``chunk_progress``, ``chunk_facets``), so they are exact under replays and cost one small
aggregation, whatever the size of the data. (FerretDB answers even ``estimatedDocumentCount`` by
scanning, which is why the curated count comes from the curator's bookkeeping too.)
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from services.gateway.answers import json_bytes
from services.gateway.deps import StoresDep, Viewer
from services.gateway.query import COMPANY_PATTERN, FIRST_DAY, LAST_DAY
from services.gateway.read.stats import OF_RUNS, Stats, shared_totals

router = APIRouter(tags=["stats"])


@router.get("/stats", response_model=Stats, summary="Rows per layer, company and sentiment (all runs)")
async def stats(stores: StoresDep, _: Viewer) -> Response:
    """Totals as of at most a second ago: one computation (and one serialisation) answers every
    caller for a second."""
    return json_bytes(await shared_totals(stores))


class DailyStats(BaseModel):
    days: list[date] = Field(description="every day with staged tweets in the range, ascending")
    by_company: dict[str, list[int]] = Field(
        description="company -> staged tweets per day (aligned with days)"
    )
    by_sentiment: dict[str, list[int]] = Field(
        description="sentiment -> staged tweets per day (aligned with days)"
    )


@router.get(
    "/stats/daily",
    response_model=DailyStats,
    summary="Staged tweets per day, per company and per sentiment (all runs; the dashboard's charts)",
)
async def daily(
    stores: StoresDep,
    _: Viewer,
    start_date: Annotated[
        date | None,
        Query(ge=FIRST_DAY, le=LAST_DAY, description="first day (inclusive)", examples=["2020-09-14"]),
    ] = None,
    end_date: Annotated[
        date | None,
        Query(ge=FIRST_DAY, le=LAST_DAY, description="last day (inclusive)", examples=["2020-09-20"]),
    ] = None,
    company: Annotated[
        str | None, Query(pattern=COMPANY_PATTERN, description="only this company", examples=["Apple"])
    ] = None,
) -> DailyStats:
    if start_date and end_date and start_date > end_date:
        raise HTTPException(422, "start_date is after end_date")
    where, args = [OF_RUNS], []
    for clause, value in (("day >= %s", start_date), ("day <= %s", end_date), ("company = %s", company)):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = (
        "SELECT day, company, sentiment, SUM(n) FROM chunk_daily WHERE "
        + " AND ".join(where)
        + " GROUP BY day, company, sentiment"
    )
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, args)
        rows = await cur.fetchall()
    days = sorted({r[0] for r in rows})
    index = {d: i for i, d in enumerate(days)}
    by_company: dict[str, list[int]] = {}
    by_sentiment: dict[str, list[int]] = {}
    for day, comp, sentiment, n in rows:
        by_company.setdefault(comp, [0] * len(days))[index[day]] += int(n)
        by_sentiment.setdefault(sentiment, [0] * len(days))[index[day]] += int(n)
    return DailyStats(
        days=days,
        by_company=dict(sorted(by_company.items())),
        by_sentiment=dict(sorted(by_sentiment.items())),
    )
