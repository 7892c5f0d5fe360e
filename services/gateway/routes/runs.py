"""Runs: request one (admin), list them, and read a run's quality report."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from pydantic import AfterValidator, BaseModel, Field

from lake.adapters.staging_repo import RunNotReplayable
from lake.events import GeneratedSource, KaggleSource, PathSource, Source
from lake.recovery import replay_run as replay_layers
from lake.runs import request_run
from lake.sources import SourceRefused, check_allowed, check_rows
from services.gateway.deps import Admin, Analyst, SettingsDep, StoresDep

router = APIRouter(tags=["runs"])
RUN_ID = r"^[0-9A-Za-z_.:-]{1,64}$"
LAYERS = ("raw", "staged", "curated")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# MySQL DATETIME columns hold UTC without a zone; answers carry it (RFC 3339 date-time).
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class RunAccepted(BaseModel):
    run_id: str


class LayerReport(BaseModel):
    status: Literal["pending", "running", "succeeded", "failed"]
    chunks_done: int
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class RunEvent(BaseModel):
    at: UtcDatetime
    event: Literal["failed", "redriven", "replayed"]
    detail: str | None


class RunReport(BaseModel):
    run_id: str
    status: Literal["requested", "running", "succeeded", "failed"] = Field(
        description="requested: accepted, not taken by the ingestor yet (docs/api.md)"
    )
    error: str | None
    source: dict[str, Any]
    requested_by: str
    requested_at: UtcDatetime
    finished_at: UtcDatetime | None
    total_chunks: int | None
    raw_rows: int
    rejected_rows: int
    duplicate_rows: int
    staged_rows: int
    curated_docs: int
    layers: dict[str, LayerReport]
    rejected_by_reason: dict[str, int]
    dead_letters: int = Field(description="dead letters of this run (GET /dead-letters?run_id=…)")
    dead_letters_waiting: int = Field(description="of which not redriven yet")
    history: list[RunEvent] = Field(description="failures, redrives, replays, oldest first")


class RunList(BaseModel):
    items: list[RunReport]


EXAMPLES = {
    "generated": {"value": {"source": "generated", "rows": 10000, "seed": 7}},
    "path": {"value": {"source": "path", "path": "data/bigtech"}},
    "kaggle": {"value": {"source": "kaggle", "version": 1}},
}


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
    summary="Request an ingestion run (publishes ingest.requested)",
)
async def start_run(
    settings: SettingsDep,
    _: Admin,
    request: Annotated[Source, Body(openapi_examples=EXAMPLES)],
) -> RunAccepted:
    try:
        if isinstance(request, GeneratedSource):
            check_rows(request.rows, settings.pipeline.max_generated_rows)
        elif isinstance(request, PathSource):
            check_allowed(request.path, settings.pipeline.allowed_roots)
    except SourceRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    assert isinstance(request, GeneratedSource | PathSource | KaggleSource)
    # recorded as `requested`, then published: GET /runs/{id} answers at once (lake.runs)
    run_id = await asyncio.to_thread(request_run, settings, request, "gateway")
    return RunAccepted(run_id=run_id)


async def report(stores: StoresDep, run_ids: list[str]) -> list[RunReport]:
    if not run_ids:
        return []
    marks = ", ".join(["%s"] * len(run_ids))
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT run_id, status, error, source, requested_by, requested_at, finished_at, total_chunks"
            f" FROM runs WHERE run_id IN ({marks})",
            run_ids,
        )
        runs = {r[0]: r for r in await cur.fetchall()}
        await cur.execute(
            "SELECT run_id, layer, COUNT(*), MIN(started_at), MAX(finished_at), SUM(raw_rows),"
            " SUM(rejected_rows), SUM(duplicate_rows), SUM(staged_rows), SUM(curated_docs)"
            f" FROM chunk_progress WHERE run_id IN ({marks}) GROUP BY run_id, layer",
            run_ids,
        )
        progress: dict[str, dict[str, Any]] = {}
        for r in await cur.fetchall():
            progress.setdefault(r[0], {})[r[1]] = r[2:]
        await cur.execute(
            f"SELECT run_id, reason, COUNT(*) FROM rejected_rows WHERE run_id IN ({marks})"
            " GROUP BY run_id, reason",
            run_ids,
        )
        reasons: dict[str, dict[str, int]] = {}
        for rid, reason, n in await cur.fetchall():
            reasons.setdefault(rid, {})[reason] = int(n)
        await cur.execute(
            "SELECT run_id, COUNT(*), SUM(redriven_at IS NULL) FROM dead_letters"
            f" WHERE run_id IN ({marks}) GROUP BY run_id",
            run_ids,
        )
        letters = {rid: (int(n), int(w or 0)) for rid, n, w in await cur.fetchall()}
        await cur.execute(
            f"SELECT run_id, at, event, detail FROM run_history WHERE run_id IN ({marks}) ORDER BY seq",
            run_ids,
        )
        history: dict[str, list[RunEvent]] = {}
        for rid, at, event, detail in await cur.fetchall():
            history.setdefault(rid, []).append(RunEvent(at=at, event=event, detail=detail))
    out = []
    for rid in run_ids:
        if rid not in runs:
            continue
        _, st, error, source, by, requested, finished, total = runs[rid]
        prog = progress.get(rid, {})
        layers = {}
        for layer in LAYERS:
            n, t0, t1 = prog[layer][:3] if layer in prog else (0, None, None)
            if total is not None and n >= total:
                lst = "succeeded"
            elif st == "failed":
                lst = "failed" if n or layer == "raw" else "pending"
            else:
                lst = "running" if n else "pending"
            layers[layer] = LayerReport(
                status=lst, chunks_done=int(n), started_at=t0, finished_at=t1 if lst == "succeeded" else None
            )

        def total_of(layer: str, i: int, prog: dict[str, Any] = prog) -> int:
            return int(prog[layer][3 + i] or 0) if layer in prog else 0

        out.append(
            RunReport(
                run_id=rid,
                status=st,
                error=error,
                source=json.loads(source),
                requested_by=by,
                requested_at=requested,
                finished_at=finished,
                total_chunks=total,
                raw_rows=total_of("raw", 0),
                rejected_rows=total_of("staged", 1),
                duplicate_rows=total_of("staged", 2),
                staged_rows=total_of("staged", 3),
                curated_docs=total_of("curated", 4),
                layers=layers,
                rejected_by_reason=reasons.get(rid, {}),
                dead_letters=letters.get(rid, (0, 0))[0],
                dead_letters_waiting=letters.get(rid, (0, 0))[1],
                history=history.get(rid, []),
            )
        )
    return out


async def recent(stores: StoresDep, limit: int) -> list[RunReport]:
    """The reports of the ``limit`` most recently requested runs, newest first."""
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT run_id FROM runs ORDER BY requested_at DESC LIMIT %s", (limit,))
        ids = [r[0] for r in await cur.fetchall()]
    return await report(stores, ids)


@router.get("/runs", response_model=RunList, summary="Recent runs, newest first, with their reports")
async def list_runs(
    stores: StoresDep,
    _: Analyst,
    limit: Annotated[int, Query(ge=1, le=100, description="runs to return", examples=[20])] = 20,
) -> RunList:
    return RunList(items=await recent(stores, limit))


@router.get(
    "/runs/{run_id}",
    response_model=RunReport,
    responses={404: {}},
    summary="One run's quality report: status, counts, layers, rejects by reason",
)
async def get_run(
    stores: StoresDep,
    _: Analyst,
    run_id: Annotated[str, Path(pattern=RUN_ID, examples=["20201013T120000Z-1a2b3c4d"])],
) -> RunReport:
    reports = await report(stores, [run_id])
    if not reports:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id}")
    return reports[0]


class ReplayRequest(BaseModel):
    from_: Literal["curate", "stage"] = Field(
        alias="from",
        description="curate: documents and curated Parquet again from the staged Parquet (after a"
        " tokenizer or enrichment change); stage: staged rows again from the raw objects under the"
        " cleaning rules in force, then the curated layer (after a cleaning rule changed)",
    )


class ReplayAccepted(BaseModel):
    run_id: str
    from_: str = Field(alias="from")
    chunks: int = Field(description="chunks published again (raw chunks from stage, staged from curate)")


@router.post(
    "/runs/{run_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayAccepted,
    response_model_by_alias=True,
    responses={
        404: {},
        409: {"description": "the run is still in progress, or lacks what the layer replays from"},
    },
    summary="Rebuild a finished run from its staged Parquet (curate) or its raw objects (stage) (admin)",
)
async def replay_run(
    settings: SettingsDep,
    who: Admin,
    run_id: Annotated[str, Path(pattern=RUN_ID, examples=["20201013T120000Z-1a2b3c4d"])],
    body: Annotated[
        ReplayRequest,
        Body(
            openapi_examples={
                "curate": {"value": {"from": "curate"}},
                "stage": {"value": {"from": "stage"}},
            }
        ),
    ],
) -> Any:
    try:
        chunks = await asyncio.to_thread(replay_layers, settings, run_id, body.from_, f"gateway:{who}")
    except RunNotReplayable as exc:
        code = status.HTTP_404_NOT_FOUND if str(exc).startswith("no run") else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(exc)) from exc
    return {"run_id": run_id, "from": body.from_, "chunks": chunks}


_ = (re, Field)
