"""``GET /health``: each dependency with ok, latency and error; 200 when all are ok, else 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from services.gateway.deps import StoresDep
from services.gateway.stores import Stores

router = APIRouter(tags=["health"])
TIMEOUT_S = 3.0


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="ok: every store answers")
    api_status: Literal["ok", "degraded"] = Field(
        description="the same as status, under the name the reference implementation's clients read"
    )
    timestamp: datetime = Field(description="when the probes ran (ISO-8601, UTC)")
    services: dict[str, bool]
    checks: dict[str, Check]


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

    async def mysql() -> None:
        async with stores.mysql.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")

    async def mongodb() -> None:
        await stores.mongo.admin.command("ping")

    async def kafka() -> None:
        async with stores.kafka_lock:
            try:
                admin = await stores.kafka()
                await asyncio.to_thread(admin.list_topics)
            except Exception:
                await stores.close_kafka()  # reconnect on the next probe
                raise

    names = ("s3", "mysql", "mongodb", "kafka")
    results = await asyncio.gather(*(_timed(p) for p in (s3, mysql, mongodb, kafka)))
    return dict(zip(names, results, strict=True))


async def shared_probes(stores: Stores) -> tuple[datetime, dict[str, Check]]:
    """One round of probes, and when it ran, serves every caller for a second (``Stores.health``):
    a load balancer or a burst of callers never multiplies the load on the stores (or on the
    non-thread-safe Kafka client)."""

    async def timed_round() -> tuple[datetime, dict[str, Check]]:
        return datetime.now(UTC), await probes(stores)

    return await stores.health.get(timed_round)


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Liveness of every store (no authentication)",
)
async def health(stores: StoresDep, response: Response) -> Health:
    at, checks = await shared_probes(stores)
    ok = all(c.ok for c in checks.values())
    response.status_code = 200 if ok else 503
    status = "ok" if ok else "degraded"
    return Health(
        status=status,
        api_status=status,
        timestamp=at,
        services={k: c.ok for k, c in checks.items()},
        checks=checks,
    )
