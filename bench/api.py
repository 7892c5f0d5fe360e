"""``make bench-api``: the gateway under 64 concurrent connections, driven by wrk.

Uses the namespace of ``make bench`` (database ``bigtech_bench``, buckets ``bench-*``): when it does
not already hold a succeeded run of ``--rows`` raw rows, loads one with ``bench.pipeline`` (which
resets the namespace). Then starts the gateway (``python -m services.gateway``) as a subprocess on
port 18100, creates an analyst API key, samples tweet ids from MySQL, and drives the gateway with
wrk (``bench.wrk`` running ``bench/api.lua``: ``--concurrency`` keep-alive connections, one per wrk
thread) through these scenarios, each warmed up for ``--warmup`` seconds and then measured for
``--seconds``:

- ``mix`` (the main mix): 50/50 filtered, cursor-paginated ``/staging`` pages and
  ``/curated/{twitter_id}`` lookups of sampled ids. A page: a random window of 1 to 7 days inside
  the data, a random sentiment and/or company, 50 items; half of the time instead, the next page
  (``next_cursor``) of the connection's last page, same filters;
- ``stats``: ``/stats`` alone; ``health``: ``/health`` alone;
- ``staging``: ``/staging`` pages alone, exactly as ``curated`` makes its ``/curated`` pages (the
  same filter generator with the same seed, the same cursor following): the two compare;
- ``curated-latest``: ``/curated?limit=10`` alone (no filter: the 10 newest curated documents);
- ``curated``: filtered, cursor-paginated ``/curated`` pages (as ``staging``, on ``/curated``);
- ``mix-during-ingest``: the main mix while the pipeline (one ingestor, ``--replicas`` stagers and
  curators, started here) ingests ``--ingest-rows`` generated rows of a new seed into the namespace,
  nothing reset. First the same ingestion of another new seed runs with no load: the baseline. Then
  the mix starts with the second run's request and is measured from ``--warmup`` seconds after it
  to the run's end (wrk's window ends when the run does). Each invocation adds these two runs to the
  namespace (``make bench`` resets it);
- ``stores``: the main mix's own store calls made from this process with no gateway (after it
  stopped): the rate the stores allow on this machine, a ceiling for any gateway (``bench.stores``).

``mix`` and ``stores`` are measured in ``--rounds`` rounds (default 2), in alternating order (mix,
stores, stores, mix, …; the gateway is started for each of its rounds): the machine's speed drifts
by tens of per cent within minutes, and this way a drift weighs on both sides of their ratio alike.
Their figures are over all rounds (``bench.measure.merged``); each round's are in ``by_round``.

Per scenario and endpoint it prints requests/s (requests completed inside the measuring window), p50
and p99 latency (client side, request sent to answer read, of every request in flight during the
window, each awaited to its end: a slow request counts with its whole latency, it is never dropped
as a timeout) and the errors among those (non-2xx answers, failed connections, and requests still
unanswered ``--drain`` seconds after the window, with the first error of each endpoint), and the
CPU (in cores) the gateway, the client (wrk, or this process for ``stores``), MariaDB, FerretDB and
the whole machine used while measuring, with the client's CPU per request.

The last stdout line is one JSON object: the main mix's ``requests_per_s``, ``p50_ms``, ``p99_ms``
and ``errors``; ``stats_p99_ms``; ``stores_requests_per_s`` and ``stores_p99_ms``;
``curated_list_share_of_staging`` (``curated`` pages/s ÷ ``staging`` pages/s, same filters),
``mix_share_of_stores`` (mix requests/s ÷ stores requests/s) and ``mix_p99_vs_stores`` (mix p99 ÷
stores p99); ``endpoints``, keyed ``"<scenario> <endpoint>"`` (``"mix /staging"``,
``"staging /staging"``, ``"curated /curated"``, ``"curated-latest /curated?limit=10"``,
``"stores /curated/{twitter_id}"``…: one endpoint can be in several scenarios), each with its
``scenario`` and ``endpoint``; ``cpu_cores`` per scenario; ``mix_during_ingest``: the mix's
``requests_per_s``, ``p99_ms`` and ``errors`` during the run, their ratios to the idle ``mix``
(``requests_vs_idle_mix``, ``p99_vs_idle_mix``), and the ``ingestion``: its ``rows``,
``seconds_idle``, ``seconds_under_mix``, ``duration_vs_idle`` and both runs' counts; ``rounds`` and
``by_round``. Results are recorded by hand in docs/benchmarks.md.

The client is wrk (Debian's package: ``apt-get install wrk``; without it the benchmark stops with
that hint), because the load generator shares the machine's 2 cores with the gateway and the
stores. Against the same gateway, 64 connections, alternating 8-s runs: wrk with ``bench/api.lua``
costs 0.08-0.10 ms of CPU per ``/stats`` request and 0.20-0.29 ms per ``/staging`` page (50 items,
≈ 34 kB), where the uvloop keep-alive client in Python it replaced cost 0.14-0.15 ms and
0.66-0.79 ms (it parsed each page's JSON for ``next_cursor``), and httpx before it ≈ 1.3 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx

from bench import wrk
from bench.measure import CpuMeter, Dataset, Recorder, ScenarioResult, merged, result_of
from bench.pipeline import (
    BENCH_DIR,
    NAMESPACE,
    ROOT,
    Services,
    cpu_seconds,
    drop_topics,
    generated_file,
    say,
    server_pids,
    wait_for,
)
from bench.stores import SENTIMENTS, drive_stores, run_fast

PORT = 18100
# The scenarios with the gateway, in the order they run (``curated`` last: it can leave the store
# busy), each as the requests wrk makes; then ``stores``.
GATEWAY_SCENARIOS: dict[str, list[wrk.Pick]] = {
    "mix": [
        wrk.Pick(0.5, "page", "/staging", "/staging"),
        wrk.Pick(0.5, "lookup", "/curated/{twitter_id}", "/curated/"),
    ],
    "stats": [wrk.Pick(1.0, "fixed", "/stats", "/stats")],
    "health": [wrk.Pick(1.0, "fixed", "/health", "/health")],
    "staging": [wrk.Pick(1.0, "page", "/staging", "/staging")],
    "curated-latest": [wrk.Pick(1.0, "fixed", "/curated?limit=10", "/curated?limit=10")],
    "curated": [wrk.Pick(1.0, "page", "/curated", "/curated")],
}
# The main mix again, while the pipeline ingests ``--ingest-rows`` new rows into the namespace
INGEST = "mix-during-ingest"
SCENARIOS = (*GATEWAY_SCENARIOS, INGEST, "stores")
# the same filters, page for page, until the answers differ
SAME_SEED = {"staging": "curated", INGEST: "mix"}


# --- the data in the namespace --------------------------------------------------------------------
def succeeded_run(settings: Any, rows: int) -> tuple[str, dict[str, int]] | None:
    """A succeeded run of exactly ``rows`` raw rows in the namespace, with its counts; else None."""
    import pymysql

    from lake.adapters.run_ledger import RunLedger

    try:
        repo = RunLedger(settings.mysql)
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
        from lake.cli import backfill_items, bootstrap

        # data loaded by an earlier version gets this version's migrations and their backfills
        if bootstrap(settings)["curated_items_missing"]:
            say(f"list items backfilled: {backfill_items(settings):,}")
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
def params_of(data: Dataset) -> wrk.Params:
    span = (data.last_day - data.first_day).days
    return wrk.Params(
        days=[(data.first_day + timedelta(days=k)).isoformat() for k in range(span + 8)],
        span=span,
        sentiments=SENTIMENTS,
        companies=[quote_plus(c) for c in data.companies],
        ids=data.ids,
    )


def curated_cache_counts(url: str, auth: dict[str, str]) -> dict[str, float]:
    """The gateway's /curated document cache counters (``/metrics``): hits and misses so far."""
    text = httpx.get(f"{url}/metrics", headers=auth, timeout=30).raise_for_status().text
    found = dict.fromkeys(("hit", "miss"), 0.0)
    pattern = r'^lake_gateway_curated_cache_total\{outcome="(\w+)"\} (\S+)$'
    for outcome, value in re.findall(pattern, text, re.M):
        found[outcome] = float(value)
    return found


def drive(
    name: str, url: str, token: str, params: wrk.Params, args: argparse.Namespace, pids: dict[str, int]
) -> ScenarioResult:
    """One gateway scenario: wrk from now to the window's end, then until every request sent in it
    got its answer (at most ``--drain`` seconds); each request recorded by the window's rules."""
    say(f"scenario {name}: {args.warmup:g} s warm-up, then {args.seconds:g} s measured")
    start = time.monotonic() + args.warmup
    rec = Recorder(start, start + args.seconds)
    seed = args.seed + SCENARIOS.index(SAME_SEED.get(name, name))
    auth = {"Authorization": f"Bearer {token}"}
    run = wrk.Run(
        url, auth, GATEWAY_SCENARIOS[name], params, (start, rec.stop), seed, args.concurrency, args.drain
    )
    meter = CpuMeter(pids, lambda: cpu_seconds(run.proc.pid) + time.process_time())
    time.sleep(max(0.0, start - time.monotonic()))
    meter.begin()
    cache_before = curated_cache_counts(url, auth)
    time.sleep(max(0.0, rec.stop - time.monotonic()))
    cores = meter.cores()
    cache_after = curated_cache_counts(url, auth)
    result = collect(name, run, rec, args, cores)
    hits, misses = (cache_after[k] - cache_before[k] for k in ("hit", "miss"))
    if hits + misses:
        result.curated_cache = {"hits": hits, "misses": misses, "hit_share": round(hits / (hits + misses), 3)}
    return result


def collect(
    name: str, run: wrk.Run, rec: Recorder, args: argparse.Namespace, cores: dict[str, float]
) -> ScenarioResult:
    """Wait for wrk's last answers, and record every request by the window's rules."""
    out, stopped = run.finish()
    for ep, sent, answered, status in out.records:
        error = None
        if status == 0:
            error = "no answer: the connection failed or was closed"
        elif not 200 <= status < 300:
            error = out.first_errors.get(ep, str(status))
        rec.add(run.endpoints[ep], sent, answered, error)
    for ep, sent in out.unanswered:
        rec.add(run.endpoints[ep], sent, stopped, f"no answer {args.drain:g} s after the window")
    result = result_of(name, rec, rec.stop - rec.start, cores)
    if sockets := {k: v for k, v in out.socket_errors.items() if k in ("connect", "read", "write") and v}:
        result.first_errors["wrk socket errors"] = ", ".join(f"{k} {v}" for k, v in sockets.items())
    return result


# --- the main mix while the pipeline ingests --------------------------------------------------------
@dataclass
class Ingestion:
    """What :func:`drive_during_ingestion` measured besides the mix: the runs' seconds and counts."""

    rows: int
    seconds_idle: float
    seconds_under_mix: float
    runs: dict[str, dict[str, int]]  # run id -> counts

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seconds_idle": round(self.seconds_idle, 1),
            "seconds_under_mix": round(self.seconds_under_mix, 1),
            "duration_vs_idle": ratio(self.seconds_under_mix, self.seconds_idle),
            "runs": self.runs,
        }


def ingest_seeds(settings: Any) -> tuple[int, int]:
    """Two generator seeds whose tweets the namespace does not hold yet (each invocation of this
    scenario adds two runs ``bench-api-…``; the namespace's own run is of seed 7)."""
    from lake.adapters.mysql import connect

    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM runs WHERE run_id LIKE 'bench-api-%%'")
        done = int(cur.fetchone()[0])  # type: ignore[index]
    return 1000 + done, 1001 + done


def request(publisher: Any, path: Path, label: str) -> str:
    """Request a run of ``path``: its id."""
    from lake.events import IngestRequested, PathSource

    run_id = f"bench-api-{label}-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    event = IngestRequested(run_id=run_id, request=PathSource(path=str(path)), requested_by="bench")
    publisher.publish(event)
    publisher.flush()
    return run_id


def succeeded(settings: Any, run_id: str, rows: int, timeout: float) -> None:
    status, error = wait_for(settings, run_id, rows, timeout)
    if status != "succeeded":
        raise SystemExit(f"[bench] run {run_id} {status}: {error}")


def drive_during_ingestion(
    url: str, token: str, params: wrk.Params, args: argparse.Namespace, pids: dict[str, int]
) -> tuple[ScenarioResult, Ingestion]:
    """The main mix while ``--ingest-rows`` rows of a new seed are ingested into the namespace
    (nothing reset): first the same ingestion of another new seed with no load (the baseline), then
    the mix from the second run's request to its end, measured from ``--warmup`` seconds after it."""
    from lake.adapters.broker import Publisher, make_producer
    from lake.adapters.run_ledger import RunLedger
    from lake.cli import bootstrap
    from lake.settings import Settings

    os.environ["LAKE_KAFKA_TOPIC_PREFIX"] = f"bench-{uuid.uuid4().hex[:6]}."  # the services' topics
    settings = Settings()
    bootstrap(settings)
    rows = args.ingest_rows
    files = [generated_file(rows, seed) for seed in ingest_seeds(settings)]
    log_dir = BENCH_DIR / "logs"
    services = Services(log_dir, args.replicas)
    publisher = Publisher(make_producer(settings, "bench-api"), settings)
    try:
        services.wait_ready(services.start_all())
        say(f"scenario {INGEST}: {rows:,} rows ingested with no load (the baseline); logs in {log_dir}")
        t0 = time.perf_counter()
        idle_run = request(publisher, files[0], "idle")
        succeeded(settings, idle_run, rows, args.ingest_timeout)
        idle_seconds = time.perf_counter() - t0
        say(f"baseline: {idle_seconds:.1f} s; now the same with the main mix, {args.warmup:g} s of warm-up")
        t0 = time.perf_counter()
        start = time.monotonic() + args.warmup
        seed = args.seed + SCENARIOS.index(SAME_SEED[INGEST])
        auth = {"Authorization": f"Bearer {token}"}
        run = wrk.Run(
            url, auth, GATEWAY_SCENARIOS["mix"], params, (start, start + args.ingest_timeout),
            seed, args.concurrency, args.drain, open_ended=True,
        )  # fmt: skip
        loaded_run = request(publisher, files[1], "loaded")
        services_pids = {name: proc.pid for name, proc in services.procs.items()}
        meter = CpuMeter(pids | services_pids, lambda: cpu_seconds(run.proc.pid) + time.process_time())
        time.sleep(max(0.0, start - time.monotonic()))
        meter.begin()
        try:
            succeeded(settings, loaded_run, rows, args.ingest_timeout)
        finally:
            end = time.monotonic()
            run.end_window(end)
        loaded_seconds = time.perf_counter() - t0
        if end <= start:
            raise SystemExit(f"[bench] the run ended in the {args.warmup:g} s warm-up: raise --ingest-rows")
        cores = meter.cores()
        result = collect(INGEST, run, Recorder(start, end), args, cores)
    finally:
        publisher.close()
        services.stop()
        drop_topics(settings)  # each invocation's own: left behind, they cost the broker idle CPU
        for path in files:
            path.unlink(missing_ok=True)
    repo = RunLedger(settings.mysql)
    try:
        counts = {r: repo.run_counts(r) for r in (idle_run, loaded_run)}
    finally:
        repo.close()
    return result, Ingestion(rows, idle_seconds, loaded_seconds, counts)


# --- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_130_000, help="raw rows of the run to query")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per scenario")
    parser.add_argument(
        "--drain", type=float, default=60, help="at most this long, after the window, for its last answers"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="connections (wrk threads; stores: workers)"
    )
    parser.add_argument("--sample-ids", type=int, default=3000, help="tweet ids sampled for the lookups")
    parser.add_argument("--port", type=int, default=PORT, help="port of the benchmarked gateway")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway processes (LAKE_GATEWAY_WORKERS of the gateway)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measure mix and stores this many times, alternating their order (ABBA); each figure"
        " is over all its rounds",
    )
    parser.add_argument(
        "--ingest-rows", type=int, default=113_000, help=f"rows of each ingestion of {INGEST}"
    )
    parser.add_argument("--ingest-timeout", type=float, default=1800, help=f"seconds per run of {INGEST}")
    parser.add_argument("--replicas", type=int, default=2, help=f"stagers and curators of {INGEST}")
    parser.add_argument(
        "--scenarios",
        type=lambda v: [x.strip() for x in v.split(",")],
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    args = parser.parse_args(argv)
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose among {SCENARIOS}")
    if set(args.scenarios) & {*GATEWAY_SCENARIOS, INGEST}:
        wrk.require_wrk()  # before loading anything

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
    rounds: list[ScenarioResult] = []
    ingestion: Ingestion | None = None
    token = create_key(settings, "bench-api", "analyst")  # revoked at the end
    try:
        for r in range(args.rounds):
            # the first round runs every scenario asked for; the next ones the mix and its ceiling
            # again, in the other order each time (ABBA), so a drift of the machine's speed
            # weighs on both sides of mix_share_of_stores alike
            names = [n for n in GATEWAY_SCENARIOS if n in args.scenarios and (r == 0 or n == "mix")]
            with_ingest = r == 0 and INGEST in args.scenarios
            for phase in ("gateway", "stores") if r % 2 == 0 else ("stores", "gateway"):
                if phase == "gateway" and (names or with_ingest):
                    found, loaded = gateway_round(r, token, names, with_ingest, args, data, log_dir)
                    rounds.extend(found)
                    ingestion = ingestion or loaded
                elif phase == "stores" and "stores" in args.scenarios:  # the gateway is stopped
                    stores = {n: p for n, p in server_pids().items() if n in ("mariadb", "ferretdb")}
                    rounds.append(run_fast(drive_stores(settings, data, args, stores)))
    finally:
        from lake.adapters.mysql import connect

        with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("UPDATE api_keys SET revoked_at = NOW() WHERE key_id = %s", (key_id_of(token),))
    names = list(dict.fromkeys(x.name for x in rounds))  # in the order they first ran
    results = [merged([x for x in rounds if x.name == name]) for name in names]
    by_round = {name: [x.overall for x in rounds if x.name == name] for name in names}
    report(args, data, results, ingestion, {n: v for n, v in by_round.items() if len(v) > 1})
    return 0


def gateway_round(
    r: int,
    token: str,
    names: list[str],
    with_ingest: bool,
    args: argparse.Namespace,
    data: Dataset,
    log_dir: Path,
) -> tuple[list[ScenarioResult], Ingestion | None]:
    """Round ``r``'s scenarios against a gateway started for them, and stopped after."""
    log = log_dir / ("gateway-api.log" if r == 0 else f"gateway-api-round{r + 1}.log")
    gateway = Gateway(args.port, log, args.workers)
    results: list[ScenarioResult] = []
    ingestion: Ingestion | None = None
    try:
        gateway.wait_ready()
        say(f"round {r + 1}: gateway up on {gateway.url} (pid {gateway.proc.pid}); log in {gateway.log}")
        pids = {"gateway": gateway.proc.pid} | {
            n: p for n, p in server_pids().items() if n in ("mariadb", "ferretdb")
        }
        params = params_of(data)
        for name in names:
            results.append(drive(name, gateway.url, token, params, args, pids))
        if with_ingest:
            result, ingestion = drive_during_ingestion(gateway.url, token, params, args, pids)
            results.append(result)
    finally:
        gateway.stop()
    return results, ingestion


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def summary(
    counts: dict[str, int],
    args: argparse.Namespace,
    results: list[ScenarioResult],
    ingestion: Ingestion | None,
    by_round: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The last stdout line (see the module docstring)."""
    by_name = {r.name: r.overall for r in results}
    none = {"requests_per_s": None, "p50_ms": None, "p99_ms": None, "errors": None}
    mix, stats, stores, staging, curated, loaded = (
        by_name.get(n, none) for n in ("mix", "stats", "stores", "staging", "curated", INGEST)
    )
    endpoints: dict[str, dict[str, Any]] = {}
    for r in results:
        for ep, s in r.endpoints.items():
            endpoints[f"{r.name} {ep}"] = s | {"scenario": r.name, "endpoint": ep}
    return {
        "rows": counts["raw_rows"],
        "staged_rows": counts["staged_rows"],
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "requests_per_s": mix["requests_per_s"],
        "p50_ms": mix["p50_ms"],
        "p99_ms": mix["p99_ms"],
        "errors": mix["errors"],
        "stats_p99_ms": stats["p99_ms"],
        "stores_requests_per_s": stores["requests_per_s"],  # the mix's store work with no gateway
        "stores_p99_ms": stores["p99_ms"],
        "curated_list_share_of_staging": ratio(curated["requests_per_s"], staging["requests_per_s"]),
        "mix_share_of_stores": ratio(mix["requests_per_s"], stores["requests_per_s"]),
        "mix_p99_vs_stores": ratio(mix["p99_ms"], stores["p99_ms"]),
        # the main mix while the pipeline ingests, beside the idle mix; the run beside its idle twin
        "mix_during_ingest": {
            "requests_per_s": loaded["requests_per_s"],
            "p99_ms": loaded["p99_ms"],
            "errors": loaded["errors"],
            "requests_vs_idle_mix": ratio(loaded["requests_per_s"], mix["requests_per_s"]),
            "p99_vs_idle_mix": ratio(loaded["p99_ms"], mix["p99_ms"]),
            "ingestion": ingestion.summary() if ingestion else None,
        },
        "endpoints": endpoints,
        "cpu_cores": {r.name: r.cpu_cores for r in results},
        # documents of /curated pages served from the gateway's cache, in the window (docs/api.md)
        "curated_cache": {r.name: r.curated_cache for r in results if r.curated_cache},
        # the scenarios measured in more than one round: each round's figures
        "by_round": {
            name: [{k: f[k] for k in ("requests_per_s", "p99_ms", "errors")} for f in figures]
            for name, figures in by_round.items()
        },
    }


def report(
    args: argparse.Namespace,
    data: Dataset,
    results: list[ScenarioResult],
    ingestion: Ingestion | None,
    by_round: dict[str, list[dict[str, Any]]],
) -> None:
    c = data.counts
    print(
        f"gateway: {c['staged_rows']:,} staged tweets, {c['curated_docs']:,} curated (run {data.run_id},"
        f" {c['raw_rows']:,} raw rows); {args.concurrency} connections; {args.seconds:g} s measured per"
        f" scenario after {args.warmup:g} s of warm-up; {os.cpu_count()} cores"
    )
    head = ("requests", "req/s", "p50 ms", "p99 ms")
    print(f"{'scenario':<16}{'endpoint':<24}" + "".join(f"{h:>10}" for h in head) + f"{'errors':>8}")
    for r in results:
        rows = list(r.endpoints.items())
        if len(rows) > 1:
            rows.append(("(all)", r.overall))
        for ep, s in rows:
            p50, p99 = (f"{v:.1f}" if v is not None else "-" for v in (s["p50_ms"], s["p99_ms"]))
            print(
                f"{r.name:<16}{ep:<24}{s['requests']:>10,}{s['requests_per_s']:>10,.1f}"
                f"{p50:>10}{p99:>10}{s['errors']:>8,}"
            )
    print(f"CPU used while measuring, in cores (of {os.cpu_count()}), and the client's CPU per request:")
    for r in results:
        rate = r.overall["requests_per_s"]
        per_request = f"{1000 * r.cpu_cores['bench client'] / rate:.3f} ms" if rate else "-"
        cores = "  ".join(f"{n} {v:.2f}" for n, v in r.cpu_cores.items())
        print(f"  {r.name:<16}{cores}  (client: {per_request} per request)")
    for r in results:
        if cache := r.curated_cache:
            print(
                f"  {r.name:<16}/curated documents from the gateway's cache: {cache['hit_share']:.1%}"
                f" ({int(cache['hits']):,} hits, {int(cache['misses']):,} read from the store)"
            )
    for r in results:
        for ep, err in r.first_errors.items():
            print(f"first error of {ep} ({r.name}): {err}")
    if ingestion is not None:
        print(
            f"{INGEST}: {ingestion.rows:,} rows ingested in {ingestion.seconds_under_mix:.1f} s under the"
            f" main mix, {ingestion.seconds_idle:.1f} s with no load"
            f" ({ingestion.seconds_under_mix / ingestion.seconds_idle:.2f}x);"
            f" runs {json.dumps(ingestion.runs)}"
        )
    for name, figures in by_round.items():
        each = ", ".join(f"{f['requests_per_s']:,.1f} req/s (p99 {f['p99_ms']} ms)" for f in figures)
        print(f"{name} by round: {each}")
    print("record these figures in docs/benchmarks.md (section 'Gateway: make bench-api')")
    print(json.dumps(summary(c, args, results, ingestion, by_round)))


if __name__ == "__main__":
    raise SystemExit(main())
