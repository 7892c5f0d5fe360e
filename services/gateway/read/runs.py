"""Run reports: a run's status, counts per layer, rejects by reason, dead letters and history, read
from the run ledger in MySQL (``runs``, ``chunk_progress``, ``rejected_rows``, ``dead_letters``,
``run_history``) for ``GET /runs`` and the dashboard."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from services.gateway.stores import Stores

RUN_ID = r"^[0-9A-Za-z_.:-]{1,64}$"
LAYERS = ("raw", "staged", "curated")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# MySQL DATETIME columns hold UTC without a zone; answers carry it (RFC 3339 date-time).
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


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


async def report(stores: Stores, run_ids: list[str]) -> list[RunReport]:
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


async def recent(stores: Stores, limit: int) -> list[RunReport]:
    """The reports of the ``limit`` most recently requested runs, newest first."""
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT run_id FROM runs ORDER BY requested_at DESC LIMIT %s", (limit,))
        ids = [r[0] for r in await cur.fetchall()]
    return await report(stores, ids)
