"""The ``stores`` scenario of ``make bench-api``: the main mix's store work with no gateway at all.

The same requests as the main mix (``bench/api.lua`` makes them for the gateway; ``Workload`` here
draws them the same way: a random window of 1 to 7 days inside the data, a random sentiment and/or
company, 50 items, half of the time the worker's next page; or a sampled tweet id), each doing
exactly the store calls its endpoint makes (a ``/staging`` page: the gateway's own
``staged_rows``; a ``/curated/{id}`` lookup: ``find_one`` by ``_id`` and, at the same time, the
staged row by primary key), from this process on its own pools, ``--concurrency`` at a time. Its
rate is what the stores (and a Python client) allow on this machine: a ceiling for any gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

from bench.measure import CpuMeter, Dataset, Recorder, ScenarioResult, result_of
from bench.pipeline import say

T = TypeVar("T")
SENTIMENTS = ("positive", "neutral", "negative")
FOLLOW_CURSOR = 0.5  # chance that a paginated request asks for the next page of the worker's last one


@dataclass(frozen=True)
class Request:
    endpoint: str  # the label the figures are grouped by
    path: str
    params: dict[str, str]
    paginated: bool = False


@dataclass
class Worker:
    """Per worker: a random stream, and the next page of its last paginated request per endpoint."""

    rng: random.Random
    next_page: dict[str, dict[str, str]] = field(default_factory=dict)


class Workload:
    def __init__(self, data: Dataset) -> None:
        self.data = data

    def filters(self, rng: random.Random) -> dict[str, str]:
        """A window of 1 to 7 days inside the data, a sentiment and/or a company (at least one)."""
        span = (self.data.last_day - self.data.first_day).days
        days = rng.randint(1, 7)
        start = self.data.first_day + timedelta(days=rng.randint(0, max(span - days + 1, 0)))
        params = {"start_date": start.isoformat(), "end_date": (start + timedelta(days=days - 1)).isoformat()}
        which = rng.choice(("sentiment", "company", "both"))
        if which in ("sentiment", "both"):
            params["sentiment"] = rng.choice(SENTIMENTS)
        if which in ("company", "both") and self.data.companies:
            params["company"] = rng.choice(self.data.companies)
        return params

    def page(self, w: Worker, path: str) -> Request:
        follow = w.next_page.get(path)
        if follow is not None and w.rng.random() < FOLLOW_CURSOR:
            return Request(path, path, follow, paginated=True)
        return Request(path, path, self.filters(w.rng) | {"limit": "50"}, paginated=True)

    def lookup(self, w: Worker) -> Request:
        return Request("/curated/{twitter_id}", f"/curated/{w.rng.choice(self.data.ids)}", {})

    def mix(self, w: Worker) -> Request:
        return self.page(w, "/staging") if w.rng.random() < 0.5 else self.lookup(w)


def next_cursor(page: bytes) -> str | None:
    """The ``next_cursor`` at the end of a ``/staging`` answer (``…,"next_cursor":"…"}``)."""
    tail = page.rsplit(b'"next_cursor":', 1)[1]
    return None if tail.startswith(b"null") else tail[1 : tail.index(b'"', 1)].decode()


# What one worker does with a request: (error or None, next_cursor of a page or None).
Call = Callable[[Request], Awaitable[tuple[str | None, str | None]]]


async def worker_loop(call: Call, pick: Callable[[Worker], Request], w: Worker, rec: Recorder) -> None:
    while time.monotonic() < rec.stop:
        req = pick(w)
        t0 = time.monotonic()
        error, cursor = await call(req)
        rec.add(req.endpoint, t0, time.monotonic(), error)
        if req.paginated:
            base = {k: v for k, v in req.params.items() if k != "cursor"}
            if cursor:
                w.next_page[req.path] = base | {"cursor": cursor}
            else:
                w.next_page.pop(req.path, None)


async def drive_stores(
    settings: Any, data: Dataset, args: argparse.Namespace, pids: dict[str, int]
) -> ScenarioResult:
    from pymongo import AsyncMongoClient

    from services.gateway.query import Cursor, TweetQuery
    from services.gateway.stores import mysql_pool
    from services.gateway.tweet_pages import staged_lookup, staged_page

    pool = await mysql_pool(settings.mysql, maxsize=args.concurrency)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo.url, tz_aware=True, maxPoolSize=args.concurrency
    )
    tweets = mongo[settings.mongo.database][settings.mongo.collection]
    per_item = settings.gateway.scan_rows_per_item

    async def call(req: Request) -> tuple[str | None, str | None]:
        try:
            if req.paginated:
                p = req.params
                # built directly, as before the gateway validated its parameters with a model: the
                # ceiling keeps measuring the store calls, not the gateway's parameter parsing
                query = TweetQuery(
                    start_date=date.fromisoformat(p["start_date"]),
                    end_date=date.fromisoformat(p["end_date"]),
                    sentiment=p.get("sentiment"),
                    company=p.get("company"),
                    hashtag=None,
                    q=None,
                    min_followers=None,
                    sort="-created_at",
                    limit=int(p["limit"]),
                    cursor=Cursor.decode(p["cursor"]) if "cursor" in p else None,
                )
                async with pool.acquire() as conn, conn.cursor() as cur:
                    page = await staged_page(cur, query, per_item)
                return None, next_cursor(page)
            tid = req.path.rsplit("/", 1)[1]

            async def staged() -> Any:
                async with pool.acquire() as conn, conn.cursor() as cur:
                    return await staged_lookup(cur, int(tid))

            doc, _ = await asyncio.gather(tweets.find_one({"_id": tid}, {"_id": 0}), staged())
            return (None if doc is not None else f"no curated document {tid}"), None
        except Exception as exc:  # reported as the endpoint's first error
            return f"{type(exc).__name__}: {exc}"[:500], None

    load = Workload(data)
    say(f"scenario stores: {args.warmup:g} s warm-up, then {args.seconds:g} s measured")
    start = time.monotonic() + args.warmup
    rec = Recorder(start, start + args.seconds)
    workers = [Worker(random.Random((args.seed + 100) * 1000 + i)) for i in range(args.concurrency)]
    meter = CpuMeter(pids, time.process_time)
    # as the gateway does after opening its stores: the collector's full passes skip what this
    # process loaded (the pipeline's modules, botocore's models), not a pause in the ceiling's p99
    gc.collect()
    gc.freeze()
    try:
        tasks = [asyncio.create_task(worker_loop(call, load.mix, w, rec)) for w in workers]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        meter.begin()
        await asyncio.sleep(max(0.0, rec.stop - time.monotonic()))
        cores = meter.cores()
        await asyncio.gather(*tasks)
    finally:
        pool.close()
        await pool.wait_closed()
        await mongo.close()
    return result_of("stores", rec, args.seconds, cores)


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop (installed with uvicorn[standard]) when present: a cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
