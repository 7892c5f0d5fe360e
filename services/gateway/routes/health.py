"""``GET /health``: each store with ok, latency and error (503 when one is down), and the layers
that are stalled: consumers with lag for ``LAKE_GATEWAY_STALL_AFTER_S`` and no chunk of the layer
finished meanwhile (200 with ``status: "degraded"``). A viewer key also sees each layer's lag and
last chunk time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from lake import auth
from services.gateway.deps import OptionalRole, StoresDep
from services.gateway.kafka_state import current as kafka_state
from services.gateway.stores import Stores

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])
TIMEOUT_S = 3.0


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


LAYERS = (("ingest", "ingestor", "raw"), ("stage", "stager", "staged"), ("curate", "curator", "curated"))
Layer = Literal["ingest", "stage", "curate"]


class LayerState(BaseModel):
    lag: int = Field(description="events of the layer's topic its consumers have not yet committed")
    last_chunk_at: datetime | None = Field(description="when a chunk of this layer last finished")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="ok: every store answers and no layer is stalled; degraded otherwise"
    )
    api_status: Literal["ok", "degraded"] = Field(
        description="the same as status, under the name the reference implementation's clients read"
    )
    timestamp: datetime = Field(description="when the probes ran (ISO-8601, UTC)")
    services: dict[str, bool]
    checks: dict[str, Check]
    stalled: list[Layer] = Field(
        description="layers whose consumers have had lag for LAKE_GATEWAY_STALL_AFTER_S with no chunk"
        " done meanwhile (a service down or stuck); empty when unknown (a store is down)"
    )
    layers: dict[Layer, LayerState] | None = Field(
        default=None, description="each layer's consumer lag and last chunk time (with a viewer key)"
    )


def stalled_layers(
    states: dict[str, LayerState], lag_since: dict[str, float], now: float, wall: datetime, after: float
) -> list[str]:
    """The layers whose consumers have had lag since at least ``after`` seconds ago (``lag_since``:
    monotonic time lag was first seen, kept across calls and updated here) and finished no chunk in
    the last ``after`` seconds. A layer idle for days that gets new work is not stalled at once."""
    out = []
    for name, state in states.items():
        if state.lag <= 0:
            lag_since.pop(name, None)
            continue
        since = lag_since.setdefault(name, now)
        recent = state.last_chunk_at is not None and (wall - state.last_chunk_at).total_seconds() < after
        if now - since >= after and not recent:
            out.append(name)
    return out


async def _timed(probe: Callable[[], Awaitable[Any]]) -> Check:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), TIMEOUT_S)
        return Check(ok=True, latency_ms=round((time.perf_counter() - t0) * 1000, 2))
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        return Check(ok=False, latency_ms=round((time.perf_counter() - t0) * 1000, 2), error=msg)


async def probes(stores: Stores) -> dict[str, Check]:
    async def s3() -> None:
        await stores.s3.head_bucket(Bucket=stores.settings.s3.raw_bucket)

    async def mysql() -> None:  # on /health's own connection: never queued behind the API's queries
        async with stores.mysql_health.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")

    async def mongodb() -> None:
        await stores.mongo.admin.command("ping")

    async def kafka() -> None:
        await stores.with_kafka(lambda admin: admin.list_topics())  # a failed client: a new one next

    names = ("s3", "mysql", "mongodb", "kafka")
    results = await asyncio.gather(*(_timed(p) for p in (s3, mysql, mongodb, kafka)))
    return dict(zip(names, results, strict=True))


Round = tuple[datetime, dict[str, Check], dict[str, LayerState] | None, list[str]]


async def layer_states(stores: Stores) -> dict[str, LayerState]:
    """Each layer's consumer-group lag (Kafka, shared with the dashboard) and last chunk time."""
    state = await stores.pipeline.get(lambda: kafka_state(stores))
    lags = {g["service"]: int(g["lag"]) for g in state["consumer_groups"]}
    async with stores.mysql_health.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT layer, MAX(finished_at) FROM chunk_progress GROUP BY layer")
        last = {layer: at.replace(tzinfo=UTC) for layer, at in await cur.fetchall() if at is not None}
    return {
        name: LayerState(lag=lags.get(service, 0), last_chunk_at=last.get(progress))
        for name, service, progress in LAYERS
    }


async def shared_probes(stores: Stores) -> Round:
    """One round — the probes, when they ran, the layers' state and the stalled ones — serves every
    caller for a second (``Stores.health``): a load balancer or a burst of callers never multiplies
    the load on the stores (or on the non-thread-safe Kafka client)."""

    async def timed_round() -> Round:
        at = datetime.now(UTC)
        checks = await probes(stores)
        if not all(c.ok for c in checks.values()):
            return at, checks, None, []
        try:
            states = await layer_states(stores)
        except Exception as exc:  # the stores answered a moment ago: report, do not fail the probe
            log.warning("layer state unavailable: %s", exc)
            return at, checks, None, []
        after = stores.settings.gateway.stall_after_s
        return at, checks, states, stalled_layers(states, stores.lag_since, time.monotonic(), at, after)

    return await stores.health.get(timed_round)


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Liveness of every store and stalled layers (no key needed; a viewer key sees more)",
)
async def health(stores: StoresDep, response: Response, role: OptionalRole) -> Health:
    at, checks, states, stalled = await shared_probes(stores)
    ok = all(c.ok for c in checks.values())
    response.status_code = 200 if ok else 503
    status = "ok" if ok and not stalled else "degraded"
    shown = states if states is not None and role is not None and auth.allows(role, "viewer") else None
    return Health(
        status=status,
        api_status=status,
        timestamp=at,
        services={k: c.ok for k, c in checks.items()},
        checks=checks,
        stalled=stalled,
        layers=shown,
    )
