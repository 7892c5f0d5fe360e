"""Runs: request one (admin), list them, and read a run's quality report."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from lake.adapters.run_ledger import RunNotReplayable
from lake.events import GeneratedSource, KaggleSource, PathSource, Source
from lake.recovery import replay_run as replay_layers
from lake.runs import request_run
from lake.sources import SourceRefused, check_allowed, check_rows
from services.gateway.deps import Admin, Analyst, SettingsDep, StoresDep
from services.gateway.read.runs import RUN_ID, RunReport, recent, report

router = APIRouter(tags=["runs"])


class RunAccepted(BaseModel):
    run_id: str


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
