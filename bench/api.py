"""``make bench-api``: the gateway under 64 concurrent connections, from a separate process.

Uses the namespace of ``make bench`` (database ``bigtech_bench``, buckets ``bench-*``): when it does
not already hold a succeeded run of ``--rows`` raw rows, loads one with ``bench.pipeline`` (which
resets the namespace). Then starts the gateway (``python -m services.gateway``) as a subprocess on
port 18100, creates an analyst API key, samples tweet ids from MySQL, and drives the gateway from
this process (asyncio on uvloop with the lean client of ``bench.http1``, ``--concurrency``
connections and as many workers) through four
scenarios, each warmed up for ``--warmup`` seconds and then measured for ``--seconds``:

- mix: 50/50 filtered, cursor-paginated ``/staging`` pages (a random window of 1 to 7 days inside the
  data, a random sentiment and/or company; half of the time the next page of the previous one) and
  ``/curated/{twitter_id}`` lookups of sampled ids;
- ``/stats`` alone;
- ``/health`` alone;
- ``/curated`` list queries (same filters and paging as ``/staging``);
- stores: the main mix's own store calls made from this process with no gateway (after it stopped):
  the rate the stores allow on this machine, a ceiling for any gateway (``drive_stores``).

Per endpoint it prints requests/s (requests completed inside the measuring window), p50 and p99
latency (client side, request sent to body read, of every request in flight during the window,
each awaited to its end) and the errors among those (non-2xx or transport failures, with the first
one), and the CPU (in cores) the gateway, this client, MariaDB and FerretDB used while measuring.
Each worker has its own keep-alive connection. The last stdout line is one JSON object. Results
are recorded by hand in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench import http1
from bench.pipeline import BENCH_DIR, NAMESPACE, ROOT, cpu_seconds, parent_pids, say, server_pids

PORT = 18100
T = TypeVar("T")
SENTIMENTS = ("positive", "neutral", "negative")
SCENARIOS = ("mix", "stats", "health", "curated", "stores")
FOLLOW_CURSOR = 0.5  # chance that a paginated request asks for the next page of the worker's last one


# --- the data in the namespace --------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    run_id: str
    counts: dict[str, int]
    first_day: date
    last_day: date
    companies: list[str]
    ids: list[str]


def succeeded_run(settings: Any, rows: int) -> tuple[str, dict[str, int]] | None:
    """A succeeded run of exactly ``rows`` raw rows in the namespace, with its counts; else None."""
    import pymysql

    from lake.adapters.staging_repo import StagingRepository

    try:
        repo = StagingRepository(settings.mysql)
    except pymysql.err.MySQLError:  # no database yet
        return None
    try:
        with repo.conn.cursor() as cur:
            cur.execute("SELECT run_id FROM runs WHERE status = 'succeeded' ORDER BY finished_at DESC")
            run_ids = [str(r[0]) for r in cur.fetchall()]
        repo.conn.commit()
        for run_id in run_ids:
            counts = repo.run_counts(run_id)
            if counts["raw_rows"] == rows:
                return run_id, counts
        return None
    except pymysql.err.MySQLError:  # tables missing
        return None
    finally:
        repo.close()


def ensure_loaded(settings: Any, rows: int) -> tuple[str, dict[str, int]]:
    found = succeeded_run(settings, rows)
    if found is not None:
        say(f"the bench namespace holds run {found[0]} of {rows:,} raw rows: reusing it")
        return found
    say(f"no succeeded run of {rows:,} rows in the bench namespace: loading one with bench.pipeline")
    from bench import pipeline
    from lake.settings import get_settings

    get_settings.cache_clear()  # pipeline.main sets its own topic prefix before reading the settings
    if pipeline.main(["--rows", str(rows)]) != 0:
        raise SystemExit("[bench] loading the bench namespace failed")
    found = succeeded_run(settings, rows)
    if found is None:
        raise SystemExit(f"[bench] no succeeded run of {rows:,} rows after loading")
    return found


def describe(settings: Any, run_id: str, counts: dict[str, int], sample: int) -> Dataset:
    """The data's day range, its companies, and ``sample`` random staged tweet ids (one scan)."""
    from lake.adapters.mysql import connect

    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT MIN(created_at), MAX(created_at), COUNT(*) FROM tweets")
        first, last, total = cur.fetchone()  # type: ignore[misc]
        cur.execute("SELECT DISTINCT value FROM chunk_facets WHERE facet = 'company' ORDER BY value")
        companies = [str(r[0]) for r in cur.fetchall()]
        share = min(1.0, sample / max(int(total), 1))  # ≈ sample ids, uniformly over the table
        cur.execute("SELECT twitter_id FROM tweets WHERE RAND() < %s LIMIT %s", (share, 2 * sample))
        ids = [str(r[0]) for r in cur.fetchall()]
    if not ids or first is None:
        raise SystemExit("[bench] the bench namespace has no staged tweets")
    return Dataset(run_id, counts, first.date(), last.date(), companies, ids)


# --- the gateway as a subprocess ------------------------------------------------------------------
def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Gateway:
    def __init__(self, port: int, log: Path, workers: int) -> None:
        if port_in_use(port):
            raise SystemExit(f"[bench] port {port} is already in use; stop what listens there")
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        env = os.environ | {
            "LAKE_GATEWAY_PORT": str(port),
            "LAKE_GATEWAY_HOST": "127.0.0.1",
            "LAKE_GATEWAY_WORKERS": str(workers),
        }
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.gateway"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"[bench] the gateway exited at start; see {self.log}")
            try:
                r = httpx.get(f"{self.url}/health", timeout=5)
                if r.status_code != 200:
                    say(f"/health answers {r.status_code}: {r.text[:300]}")
                return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"[bench] the gateway did not answer /health in {timeout}s; see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- load ---------------------------------------------------------------------------------------
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


@dataclass
class Figures:
    completed: int = 0  # inside the window: the throughput
    latencies: list[float] = field(default_factory=list)  # of every request in flight during it
    errors: int = 0  # among those
    first_error: str | None = None


class Recorder:
    """Per endpoint: the requests completed inside [start, stop) (the rate), and the latency and
    outcome of every request in flight during it, each awaited to its end: a request slower than the
    window still counts (it started in the warm-up, or ends after the window)."""

    def __init__(self, start: float, stop: float) -> None:
        self.start, self.stop = start, stop
        self.by_endpoint: dict[str, Figures] = {}

    def add(self, endpoint: str, t0: float, t1: float, error: str | None) -> None:
        fig = self.by_endpoint.setdefault(endpoint, Figures())
        if self.start <= t1 < self.stop:
            fig.completed += 1
        if t0 < self.stop and t1 >= self.start:
            fig.latencies.append(t1 - t0)
            if error is not None:
                fig.errors += 1
                fig.first_error = fig.first_error or error


def percentile_ms(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank, in milliseconds; None without values."""
    if not sorted_values:
        return None
    return round(sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)] * 1000, 2)


def summarise(completed: int, latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    values = sorted(latencies)
    return {
        "requests": len(values),
        "requests_per_s": round(completed / seconds, 1),
        "p50_ms": percentile_ms(values, 50),
        "p99_ms": percentile_ms(values, 99),
        "errors": errors,
    }


# What one worker does with a request: (error or None, next_cursor of a page or None).
Call = Callable[[Request], Awaitable[tuple[str | None, str | None]]]


def over_http(conn: http1.Connection) -> Call:
    async def call(req: Request) -> tuple[str | None, str | None]:
        try:
            resp = await conn.get(req.path, params=req.params)
        except http1.HTTPError as exc:
            return str(exc)[:500], None
        if not 200 <= resp.status_code < 300:
            return f"{resp.status_code} {resp.text[:500]}", None
        return None, json.loads(resp.body).get("next_cursor") if req.paginated else None

    return call


async def worker_loop(call: Call, pick: Callable[[Worker], Request], w: Worker, rec: Recorder) -> None:
    while time.perf_counter() < rec.stop:
        req = pick(w)
        t0 = time.perf_counter()
        error, cursor = await call(req)
        rec.add(req.endpoint, t0, time.perf_counter(), error)
        if req.paginated:
            base = {k: v for k, v in req.params.items() if k != "cursor"}
            if cursor:
                w.next_page[req.path] = base | {"cursor": cursor}
            else:
                w.next_page.pop(req.path, None)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of a process and its living descendants (the gateway's workers)."""
    parents = parent_pids()
    tree, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        todo += children
    return sum(cpu_seconds(p) for p in tree)


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine used so far (every core; /proc/stat, no idle or iowait)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class ScenarioResult:
    name: str
    endpoints: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    first_errors: dict[str, str]
    cpu_cores: dict[str, float]


async def run_scenario(
    name: str,
    pick: Callable[[Worker], Request],
    calls: list[Call],
    args: argparse.Namespace,
    pids: dict[str, int],
    seed: int,
) -> ScenarioResult:
    say(f"scenario {name}: {args.warmup:g} s warm-up, then {args.seconds:g} s measured")
    start = time.perf_counter() + args.warmup
    rec = Recorder(start, start + args.seconds)
    workers = [Worker(random.Random(seed * 1000 + i)) for i in range(args.concurrency)]
    tasks = [asyncio.create_task(worker_loop(c, pick, w, rec)) for c, w in zip(calls, workers, strict=True)]

    def cpu() -> dict[str, float]:
        own = {n: tree_cpu_seconds(p) for n, p in pids.items()} | {"bench client": time.process_time()}
        return own | {"whole machine": machine_busy_seconds()}

    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu0, wall0 = cpu(), time.perf_counter()
    await asyncio.sleep(max(0.0, rec.stop - time.perf_counter()))
    cpu1, wall1 = cpu(), time.perf_counter()
    await asyncio.gather(*tasks)
    cores = {n: round((cpu1[n] - cpu0[n]) / (wall1 - wall0), 2) for n in cpu0}
    figs = sorted(rec.by_endpoint.items())
    endpoints = {ep: summarise(f.completed, f.latencies, f.errors, args.seconds) for ep, f in figs}
    overall = summarise(
        sum(f.completed for _, f in figs),
        [x for _, f in figs for x in f.latencies],
        sum(f.errors for _, f in figs),
        args.seconds,
    )
    first_errors = {ep: f.first_error for ep, f in rec.by_endpoint.items() if f.first_error}
    return ScenarioResult(name, endpoints, overall, first_errors, cores)


async def drive(
    url: str, token: str, data: Dataset, args: argparse.Namespace, pids: dict[str, int]
) -> list[ScenarioResult]:
    load = Workload(data)
    scenarios: list[tuple[str, Callable[[Worker], Request]]] = [
        ("mix", load.mix),
        ("stats", lambda w: Request("/stats", "/stats", {})),
        ("health", lambda w: Request("/health", "/health", {})),
        ("curated", lambda w: load.page(w, "/curated")),  # last: it can leave the store busy
    ]
    # One keep-alive connection per worker. httpx cost ≈ 1.3 ms of client CPU per request even with
    # one client of one connection per worker (one shared pool of 64 cost ≈ 6 ms: httpcore re-scans
    # every connection on each request and release, encode/httpcore#1035), so the load generator
    # was the limit of the light scenarios; see bench/http1.py.
    clients = [http1.Connection(url, {"Authorization": f"Bearer {token}"}) for _ in range(args.concurrency)]
    try:
        return [
            await run_scenario(name, pick, [over_http(c) for c in clients], args, pids, args.seed + i)
            for i, (name, pick) in enumerate(scenarios)
            if name in args.scenarios
        ]
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def drive_stores(
    settings: Any, data: Dataset, args: argparse.Namespace, pids: dict[str, int]
) -> ScenarioResult:
    """The main mix's store work with no gateway: the same requests, each doing exactly the store
    calls its endpoint makes (a /staging page: its one SELECT; a /curated/{id} lookup: find_one by
    _id and, at the same time, the staged row by primary key), from this process on its own pools,
    64 at a time. Its rate is what the stores (and a Python client) allow on this machine: a
    ceiling for any gateway."""
    from pymongo import AsyncMongoClient

    from services.gateway.query import tweet_query
    from services.gateway.routes.staging import COLUMNS, staged_row, to_item
    from services.gateway.stores import mysql_pool

    pool = await mysql_pool(settings.mysql, maxsize=args.concurrency)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo.url, tz_aware=True, maxPoolSize=args.concurrency
    )
    tweets = mongo[settings.mongo.database][settings.mongo.collection]

    async def call(req: Request) -> tuple[str | None, str | None]:
        try:
            if req.paginated:
                p = req.params
                query = await tweet_query(
                    start_date=date.fromisoformat(p["start_date"]),
                    end_date=date.fromisoformat(p["end_date"]),
                    sentiment=p.get("sentiment"),  # type: ignore[arg-type]
                    company=p.get("company"),
                    hashtag=None,
                    q=None,
                    min_followers=None,
                    sort="-created_at",
                    limit=int(p["limit"]),
                    cursor=p.get("cursor"),
                )
                sql, sql_args = query.sql_select(COLUMNS)
                async with pool.acquire() as conn, conn.cursor() as cur:
                    await cur.execute(sql, sql_args)
                    rows = await cur.fetchall()
                return None, query.page([to_item(r) for r in rows])["next_cursor"]
            tid = req.path.rsplit("/", 1)[1]

            async def staged() -> Any:
                async with pool.acquire() as conn, conn.cursor() as cur:
                    return await staged_row(cur, int(tid))

            doc, _ = await asyncio.gather(tweets.find_one({"_id": tid}, {"_id": 0}), staged())
            return (None if doc is not None else f"no curated document {tid}"), None
        except Exception as exc:  # reported as the endpoint's first error
            return f"{type(exc).__name__}: {exc}"[:500], None

    load = Workload(data)

    def pick(w: Worker) -> Request:
        req = load.mix(w)
        return dataclasses.replace(req, endpoint=f"stores {req.endpoint}")

    try:
        return await run_scenario("stores", pick, [call] * args.concurrency, args, pids, args.seed + 100)
    finally:
        pool.close()
        await pool.wait_closed()
        await mongo.close()


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop (installed with uvicorn[standard]) when present: a cheaper client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_130_000, help="raw rows of the run to query")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=64, help="connections and workers")
    parser.add_argument("--sample-ids", type=int, default=3000, help="tweet ids sampled for the lookups")
    parser.add_argument("--port", type=int, default=PORT, help="port of the benchmarked gateway")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway processes (LAKE_GATEWAY_WORKERS of the gateway)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scenarios",
        type=lambda v: [x.strip() for x in v.split(",")],
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose among {SCENARIOS}")

    os.environ.update(NAMESPACE)
    from lake.auth import key_id_of
    from lake.cli import create_key
    from lake.settings import Settings

    settings = Settings()
    run_id, counts = ensure_loaded(settings, args.rows)
    data = describe(settings, run_id, counts, args.sample_ids)
    say(
        f"{counts['staged_rows']:,} staged tweets from {data.first_day} to {data.last_day};"
        f" {len(data.ids):,} ids sampled; {len(data.companies)} companies"
    )
    log_dir = BENCH_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    gateway = Gateway(args.port, log_dir / "gateway-api.log", args.workers)
    token: str | None = None
    try:
        token = create_key(settings, "bench-api", "analyst")  # revoked at the end
        gateway.wait_ready()
        say(f"gateway up on {gateway.url} (pid {gateway.proc.pid}); log in {gateway.log}")
        pids = {"gateway": gateway.proc.pid} | {
            n: p for n, p in server_pids().items() if n in ("mariadb", "ferretdb")
        }
        results = run_fast(drive(gateway.url, token, data, args, pids))
    finally:
        gateway.stop()
        if token is not None:
            from lake.adapters.mysql import connect

            with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("UPDATE api_keys SET revoked_at = NOW() WHERE key_id = %s", (key_id_of(token),))

    if "stores" in args.scenarios:  # after the gateway stopped: the machine is the stores' and ours
        stores = {n: p for n, p in server_pids().items() if n in ("mariadb", "ferretdb")}
        results.append(run_fast(drive_stores(settings, data, args, stores)))
    report(args, data, results)
    return 0


def report(args: argparse.Namespace, data: Dataset, results: list[ScenarioResult]) -> None:
    c = data.counts
    print(
        f"gateway: {c['staged_rows']:,} staged tweets, {c['curated_docs']:,} curated (run {data.run_id},"
        f" {c['raw_rows']:,} raw rows); {args.concurrency} connections; {args.seconds:g} s measured per"
        f" scenario after {args.warmup:g} s of warm-up; {os.cpu_count()} cores"
    )
    head = ("requests", "req/s", "p50 ms", "p99 ms")
    print(f"{'scenario':<14}{'endpoint':<24}" + "".join(f"{h:>10}" for h in head) + f"{'errors':>8}")
    for r in results:
        rows = list(r.endpoints.items())
        if len(rows) > 1:
            rows.append(("(all)", r.overall))
        for ep, s in rows:
            p50, p99 = (f"{v:.1f}" if v is not None else "-" for v in (s["p50_ms"], s["p99_ms"]))
            print(
                f"{r.name:<14}{ep:<24}{s['requests']:>10,}{s['requests_per_s']:>10,.1f}"
                f"{p50:>10}{p99:>10}{s['errors']:>8,}"
            )
    print(f"CPU used while measuring, in cores (of {os.cpu_count()}):")
    for r in results:
        print(f"  {r.name:<14}" + "  ".join(f"{n} {v:.2f}" for n, v in r.cpu_cores.items()))
    for r in results:
        for ep, err in r.first_errors.items():
            print(f"first error of {ep} ({r.name}): {err}")
    print("record these figures in docs/benchmarks.md (section 'Gateway: make bench-api')")
    by_name = {r.name: r.overall for r in results}
    none = {"requests_per_s": None, "p50_ms": None, "p99_ms": None, "errors": None}
    mix, stats, stores = (by_name.get(n, none) for n in ("mix", "stats", "stores"))
    endpoints: dict[str, dict[str, Any]] = {}
    for r in results:
        for ep, s in r.endpoints.items():
            endpoints[ep] = s | {"scenario": r.name}
    summary = {
        "rows": c["raw_rows"],
        "staged_rows": c["staged_rows"],
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "requests_per_s": mix["requests_per_s"],
        "p50_ms": mix["p50_ms"],
        "p99_ms": mix["p99_ms"],
        "errors": mix["errors"],
        "stats_p99_ms": stats["p99_ms"],
        "stores_requests_per_s": stores["requests_per_s"],  # the mix's store work with no gateway
        "stores_p99_ms": stores["p99_ms"],
        "endpoints": endpoints,
        "cpu_cores": {r.name: r.cpu_cores for r in results},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    raise SystemExit(main())
