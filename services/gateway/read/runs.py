"""Run reports: a run's status, counts per layer, rejects by reason, dead letters and history, read
from the run ledger in MySQL (``runs``, ``chunk_progress``, ``rejected_rows``, ``dead_letters``,
``run_history``) for ``GET /runs`` and the dashboard."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from lake.events import COUNT_NAMES
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


# Which layer's chunks carry each of a run's counts (``chunk_progress`` has one row per chunk and layer)
COUNT_LAYER = {
    "raw_rows": "raw",
    "rejected_rows": "staged",
    "duplicate_rows": "staged",
    "staged_rows": "staged",
    "curated_docs": "curated",
}
assert tuple(COUNT_LAYER) == COUNT_NAMES


@dataclass
class Ledger:
    """What the run ledger holds for some runs, keyed by run id."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    layers: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # run -> layer -> sums
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    letters: dict[str, tuple[int, int]] = field(default_factory=dict)  # (all, waiting)
    history: dict[str, list[RunEvent]] = field(default_factory=dict)


async def _rows(cur: Any, sql: str, run_ids: list[str]) -> list[dict[str, Any]]:
    """``sql`` (with ``{marks}`` for the run ids) as rows by column name."""
    await cur.execute(sql.format(marks=", ".join(["%s"] * len(run_ids))), run_ids)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def read_ledger(stores: Stores, run_ids: list[str]) -> Ledger:
    sums = ", ".join(f"SUM({name}) AS {name}" for name in COUNT_NAMES)
    out = Ledger()
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        for r in await _rows(
            cur,
            "SELECT run_id, status, error, source, requested_by, requested_at, finished_at, total_chunks"
            " FROM runs WHERE run_id IN ({marks})",
            run_ids,
        ):
            out.runs[r["run_id"]] = r
        for r in await _rows(
            cur,
            "SELECT run_id, layer, COUNT(*) AS chunks, MIN(started_at) AS started_at,"
            f" MAX(finished_at) AS finished_at, {sums}"
            " FROM chunk_progress WHERE run_id IN ({marks}) GROUP BY run_id, layer",
            run_ids,
        ):
            out.layers.setdefault(r["run_id"], {})[r["layer"]] = r
        for r in await _rows(
            cur,
            "SELECT run_id, reason, COUNT(*) AS n FROM rejected_rows WHERE run_id IN ({marks})"
            " GROUP BY run_id, reason",
            run_ids,
        ):
            out.reasons.setdefault(r["run_id"], {})[r["reason"]] = int(r["n"])
        for r in await _rows(
            cur,
            "SELECT run_id, COUNT(*) AS n, SUM(redriven_at IS NULL) AS waiting FROM dead_letters"
            " WHERE run_id IN ({marks}) GROUP BY run_id",
            run_ids,
        ):
            out.letters[r["run_id"]] = (int(r["n"]), int(r["waiting"] or 0))
        for r in await _rows(
            cur,
            "SELECT run_id, at, event, detail FROM run_history WHERE run_id IN ({marks}) ORDER BY seq",
            run_ids,
        ):
            event = RunEvent(at=r["at"], event=r["event"], detail=r["detail"])
            out.history.setdefault(r["run_id"], []).append(event)
    return out


def _layer_reports(run: dict[str, Any], layers: dict[str, dict[str, Any]]) -> dict[str, LayerReport]:
    out = {}
    total = run["total_chunks"]
    for layer in LAYERS:
        sums = layers.get(layer, {})
        n = int(sums.get("chunks") or 0)
        if total is not None and n >= total:
            status = "succeeded"
        elif run["status"] == "failed":
            status = "failed" if n or layer == "raw" else "pending"
        else:
            status = "running" if n else "pending"
        out[layer] = LayerReport(
            status=status,
            chunks_done=n,
            started_at=sums.get("started_at"),
            finished_at=sums.get("finished_at") if status == "succeeded" else None,
        )
    return out


def _report(run_id: str, ledger: Ledger) -> RunReport:
    run, layers = ledger.runs[run_id], ledger.layers.get(run_id, {})
    counts = {name: int(layers.get(layer, {}).get(name) or 0) for name, layer in COUNT_LAYER.items()}
    letters = ledger.letters.get(run_id, (0, 0))
    return RunReport(
        run_id=run_id,
        status=run["status"],
        error=run["error"],
        source=json.loads(run["source"]),
        requested_by=run["requested_by"],
        requested_at=run["requested_at"],
        finished_at=run["finished_at"],
        total_chunks=run["total_chunks"],
        **counts,
        layers=_layer_reports(run, layers),
        rejected_by_reason=ledger.reasons.get(run_id, {}),
        dead_letters=letters[0],
        dead_letters_waiting=letters[1],
        history=ledger.history.get(run_id, []),
    )


async def report(stores: Stores, run_ids: list[str]) -> list[RunReport]:
    """The reports of these runs (those that exist), in the order asked."""
    if not run_ids:
        return []
    ledger = await read_ledger(stores, run_ids)
    return [_report(run_id, ledger) for run_id in run_ids if run_id in ledger.runs]


async def recent(stores: Stores, limit: int) -> list[RunReport]:
    """The reports of the ``limit`` most recently requested runs, newest first."""
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT run_id FROM runs ORDER BY requested_at DESC LIMIT %s", (limit,))
        ids = [r[0] for r in await cur.fetchall()]
    return await report(stores, ids)
