"""``make bench``: the pipeline end to end through the real local stack, at dataset scale.

Generates ``--rows`` tweets once (cached under ``.lake/bench``; not timed), starts the services as
separate processes (one ingestor, ``--replicas`` stagers and curators) on a namespace of their own
(database, buckets and topics ``bench…``; the demo's data is not touched), requests a run of the
file, and times it from the request to the run's success. It samples every service's RSS, then
measures the bare limit of each stage's dominant operation on the same rows (S3 puts, MySQL's
LOAD DATA, the tokenizer's batch encode, MongoDB's insert_many) and prints each stage's throughput
as a share of it. The last stdout line is one JSON object. Results are recorded by hand in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import functools
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(os.environ.get("LAKE_RUN_DIR", ".lake")) / "bench"
NAMESPACE = {
    "LAKE_MYSQL_DATABASE": "bigtech_bench",
    "LAKE_MONGO_DATABASE": "bigtech_bench",
    "LAKE_S3_RAW_BUCKET": "bench-raw",
    "LAKE_S3_STAGING_BUCKET": "bench-staging",
    "LAKE_S3_CURATED_BUCKET": "bench-curated",
    "LAKE_ALLOWED_ROOTS": json.dumps([str(BENCH_DIR)]),
    "LAKE_WORK_DIR": str(BENCH_DIR / "work"),
    "LAKE_METRICS_PORT": "0",
    "HF_HUB_OFFLINE": "1",
    "PYTHONUNBUFFERED": "1",
}


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def parent_pids() -> dict[int, int]:
    """Every living process's parent: pid -> ppid (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return parents


def server_pids() -> dict[str, int]:
    """The local stack's servers (their PID files under the run folder)."""
    out = {}
    for name in ("kafka", "mariadb", "ferretdb", "s3"):
        pid_file = Path(os.environ.get("LAKE_RUN_DIR", ".lake")) / "pids" / f"{name}.pid"
        if pid_file.exists():
            out[name] = int(pid_file.read_text().split()[0])
    return out


class Services:
    """The pipeline services as child processes, with their peak RSS sampled every 0.2 s."""

    def __init__(self, log_dir: Path, replicas: int) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.peak: dict[str, float] = {}
        self.started_rss: dict[str, float] = {}
        self.started_cpu: dict[str, float] = {}
        self.replicas = replicas
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def start_all(self) -> list[str]:
        """Start the ingestor, the stagers and the curators; their names."""
        names = self.all_names()
        self.start(names)
        return names

    def all_names(self) -> list[str]:
        """Every process's name: the ingestor's, then the stagers', then the curators'."""
        return [n for service in ("ingestor", "stager", "curator") for n in self.names(service)]

    def names(self, service: str) -> list[str]:
        """The processes of a service: ``ingestor``, or ``stager-1``, ``stager-2`` …"""
        return [service] if service == "ingestor" else [f"{service}-{i}" for i in range(1, self.replicas + 1)]

    def start(self, names: list[str]) -> None:
        for name in names:
            module = "services." + name.split("-")[0]
            log = (self.log_dir / f"{name}.log").open("wb")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", module], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ
            )

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, proc in list(self.procs.items()):
                self.peak[name] = max(self.peak.get(name, 0.0), rss_mb(proc.pid))
            self._stop.wait(0.2)

    def wait_ready(self, names: list[str], timeout: float = 120) -> None:
        """These processes have joined their consumer groups (their logs say ``consuming``)."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                if self.procs[name].poll() is not None:
                    raise SystemExit(f"[bench] {name} exited at start; see {self.log_dir / name}.log")
                if b'"consuming"' in (self.log_dir / f"{name}.log").read_bytes():
                    pending.discard(name)
                    self.started_rss[name] = rss_mb(self.procs[name].pid)
                    self.started_cpu[name] = cpu_seconds(self.procs[name].pid)
            if time.monotonic() > deadline:
                raise SystemExit(f"[bench] {sorted(pending)} not consuming after {timeout}s")
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every service process and local server, by name."""
        pids = {name: proc.pid for name, proc in self.procs.items()} | server_pids()
        return {name: cpu_seconds(pid) for name, pid in pids.items()}

    def peak_by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, mb in self.peak.items():
            svc = name.split("-")[0]
            out[svc] = round(max(out.get(svc, 0.0), mb), 1)
        return out


def drop_topics(settings: Any) -> None:
    """Delete the topics of this bench run (each run makes its own, under its own
    ``LAKE_KAFKA_TOPIC_PREFIX``): once its services stopped nothing reads them, and a broker keeps
    every partition it was given (576 bench topics had piled up on one machine)."""
    from lake.adapters.broker import admin, all_topics

    client = admin(settings)
    try:
        existing = set(client.list_topics())
        if names := [t for t in all_topics(settings) if t in existing]:
            client.delete_topics(names)
    except Exception as exc:  # best effort: the next run uses topics of its own anyway
        say(f"could not delete the run's topics: {exc}")
    finally:
        client.close()


def generated_file(rows: int, seed: int) -> Path:
    from lake.transform.generate import write_csv

    path = BENCH_DIR / f"generated-seed{seed}-rows{rows}.csv"
    if not path.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        say(f"generating {rows:,} rows into {path} (once; not timed)")
        tmp = path.with_suffix(".part")
        with tmp.open("wb") as out:
            write_csv(out, rows, seed)
        tmp.replace(path)
    return path


Counts = dict[str, int]


def wait_for(
    settings: Any, run_id: str, rows: int, timeout: float, until: Callable[[Counts], bool] | None = None
) -> tuple[str, str | None]:
    """The run's status once it is no longer running; or ``("running", None)`` as soon as
    ``until(counts)`` holds (``RunLedger.run_counts``), when given. Progress every 10 s."""
    from lake.adapters.run_ledger import RunLedger

    repo = RunLedger(settings.mysql)
    deadline = time.monotonic() + timeout
    last_print = 0.0
    t0 = time.monotonic()
    try:
        while True:
            status = repo.run_status(run_id)
            now = time.monotonic()
            if status is not None and status[0] != "running":
                return status
            c = repo.run_counts(run_id) if until or now - last_print >= 10 else {}
            if until and until(c):
                return "running", None
            if now - last_print >= 10:
                say(
                    f"{now - t0:5.0f}s  raw {c['raw_rows']:,}/{rows:,}  staged {c['staged_rows']:,}"
                    f" (+{c['rejected_rows']:,} rejected, {c['duplicate_rows']:,} duplicates)"
                    f"  curated {c['curated_docs']:,}"
                )
                last_print = now
            if now > deadline:
                raise SystemExit(f"[bench] run {run_id} not finished after {timeout}s")
            time.sleep(0.25)
    finally:
        repo.close()


def all_staged(rows: int) -> Callable[[Counts], bool]:
    """Every raw row of the run is staged, rejected or a duplicate."""
    return lambda c: c["raw_rows"] == rows == c["staged_rows"] + c["rejected_rows"] + c["duplicate_rows"]


def all_curated(c: Counts) -> bool:
    return c["curated_docs"] >= c["staged_rows"] > 0


def stage_windows(settings: Any, run_id: str, requested: datetime) -> dict[str, dict[str, float]]:
    """Per stage: rows and seconds from its first chunk's start to its last chunk's end."""
    from lake.adapters.run_ledger import RunLedger

    repo = RunLedger(settings.mysql)
    with repo.conn.cursor() as cur:
        cur.execute(
            "SELECT layer, MIN(started_at), MAX(finished_at), SUM(raw_rows), SUM(staged_rows),"
            " SUM(curated_docs) FROM chunk_progress WHERE run_id = %s GROUP BY layer",
            (run_id,),
        )
        rows = {r[0]: r[1:] for r in cur.fetchall()}
        cur.execute("SELECT finished_at FROM runs WHERE run_id = %s", (run_id,))
        run_end = cur.fetchone()[0]  # type: ignore[index]
    repo.close()
    start = requested.replace(tzinfo=None)
    out: dict[str, dict[str, float]] = {}
    raw = rows["raw"]
    out["ingest"] = {"rows": int(raw[2]), "seconds": (raw[1] - start).total_seconds()}
    staged = rows["staged"]
    out["stage"] = {"rows": int(raw[2]), "seconds": (staged[1] - staged[0]).total_seconds()}
    curated = rows["curated"]
    out["curate"] = {"rows": int(curated[4]), "seconds": (curated[1] - curated[0]).total_seconds()}
    out["finalize"] = {"rows": int(curated[4]), "seconds": (run_end - curated[1]).total_seconds()}
    for v in out.values():
        v["per_s"] = round(v["rows"] / v["seconds"], 1) if v["seconds"] > 0 else 0.0
        v["seconds"] = round(v["seconds"], 2)
    return out


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def machine_speed() -> dict[str, float]:
    """The machine's speed now, for reading the run's CPU figures: this machine's has moved by 1.7x
    between hours (docs/benchmarks.md), so figures of runs hours apart compare only through it. The
    best of five rounds of the stager's text cleaning on 5,000 generated tweets (pure Python, as
    most of the services' CPU is) and of the tokenizer on them (Rust)."""
    from lake.schema import RAW_COLUMNS
    from lake.transform.clean import clean_text
    from lake.transform.generate import generate_records
    from lake.transform.tokenize import load_tokenizer

    at = RAW_COLUMNS.index("text")
    texts = [str(r[at]) for r in generate_records(5000, seed=1, malformed_share=0.0)]
    tok = load_tokenizer("bert-base-uncased", 128)
    clean = min(_timed(lambda: [clean_text(t) for t in texts]) for _ in range(5))
    encode = min(_timed(lambda: tok.encode_whole(texts)) for _ in range(5))  # tokenizers, no word cache
    return {
        "clean_text_us": round(clean / len(texts) * 1e6, 2),
        "tokenizer_us": round(encode / len(texts) * 1e6, 2),
    }


def bare_limits(settings: Any, csv_path: Path, sample: int) -> dict[str, dict[str, float]]:
    """Each stage's dominant operation alone, on rows of this run."""
    import polars as pl
    import pymongo

    from lake.adapters.mysql import connect
    from lake.adapters.objectstore import S3ObjectStore
    from lake.transform.tokenize import load_tokenizer

    out: dict[str, dict[str, float]] = {}
    store = S3ObjectStore.from_settings(settings.s3)
    size = csv_path.stat().st_size
    secs = _timed(lambda: store.upload_file(settings.s3.raw_bucket, "bare/put.csv", csv_path))
    out["s3_put"] = {"mb_per_s": round(size / 1e6 / secs, 1), "seconds": round(secs, 2)}
    store.delete_prefix(settings.s3.raw_bucket, "bare/")

    frames = []
    got = 0
    for obj in store.list_keys(settings.s3.staging_bucket, "tweets/"):
        frames.append(pl.read_parquet(io.BytesIO(store.get_bytes(settings.s3.staging_bucket, obj["Key"]))))
        got += frames[-1].height
        if got >= sample:
            break
    staged = pl.concat(frames).head(sample)

    tok = load_tokenizer(settings.pipeline.tokenizer, settings.pipeline.max_tokens)
    texts = staged["clean_text"].to_list()
    secs = _timed(lambda: tok.encode(texts))
    out["tokenizer"] = {"rows_per_s": round(len(texts) / secs, 1), "rows": len(texts)}

    cols = staged.columns
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as tmp:
        staged.with_columns(
            pl.col("created_at").dt.replace_time_zone(None).dt.strftime("%Y-%m-%d %H:%M:%S")
        ).write_csv(tmp.name, include_header=False, null_value="NULL", quote_style="non_numeric")
    with connect(settings.mysql, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS tweets_bare")
        cur.execute("CREATE TABLE tweets_bare LIKE tweets")
        cur.execute("ALTER TABLE tweets_bare MODIFY staged_at DATETIME(3) NULL")
        sql = (
            f"LOAD DATA LOCAL INFILE '{tmp.name}' INTO TABLE tweets_bare CHARACTER SET utf8mb4"
            " FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY ''"
            f" LINES TERMINATED BY '\\n' ({', '.join(cols)})"
        )
        secs = _timed(lambda: cur.execute(sql))
        cur.execute("SELECT COUNT(*) FROM tweets_bare")
        loaded = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute("DROP TABLE tweets_bare")
    os.unlink(tmp.name)
    out["mysql_load_data"] = {"rows_per_s": round(loaded / secs, 1), "rows": loaded}

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(settings.mongo.url, tz_aware=True)
    docs = list(client[settings.mongo.database][settings.mongo.collection].find().limit(min(sample, 20_000)))
    bare = client[settings.mongo.database]["tweets_bare"]
    # like the curator's collection: the _id index only (reads are by _id; the catalogue is in MySQL).
    # The best of three rounds, each into an empty collection: one round moved between 11k and 22k
    # documents/s from run to run, and a bare limit is the least disturbed measurement
    rates: list[float] = []
    for _ in range(3):
        bare.drop()
        fresh = copy.deepcopy(docs)
        secs = _timed(functools.partial(bare.insert_many, fresh, ordered=False))
        rates.append(round(len(docs) / secs, 1))
    bare.drop()
    client.close()
    out["mongo_insert_many"] = {"docs_per_s": max(rates), "docs": len(docs)}
    out["mongo_insert_many_rounds"] = {str(n): rate for n, rate in enumerate(rates, 1)}
    return out


@dataclass
class Measured:
    """One timed run: from the ingest request to the run's success."""

    run_id: str
    requested: datetime
    status: tuple[str, str | None]
    seconds: float
    cpu_used: dict[str, float]  # CPU seconds by process, the whole run
    curate_cpu: dict[str, float] | None = None  # --curate-backlog: by process, curation alone


def measure_run(settings: Any, services: Services, csv_path: Path, args: argparse.Namespace) -> Measured:
    """Request a run of ``csv_path`` and wait for it. With ``--curate-backlog`` the curators start
    only once every row is staged, so curation runs alone on the staged backlog."""
    from lake.adapters.broker import Publisher, make_producer
    from lake.events import IngestRequested, PathSource

    late = services.names("curator") if args.curate_backlog else []
    early = [n for n in services.all_names() if n not in late]
    services.start(early)
    services.wait_ready(early)
    say(f"services consuming; logs in {services.log_dir}")
    run_id = "bench-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    publisher = Publisher(make_producer(settings, "bench"), settings)
    try:
        cpu_before = services.cpu()
        requested = datetime.now(UTC)
        t0 = time.perf_counter()
        publisher.publish(
            IngestRequested(run_id=run_id, request=PathSource(path=str(csv_path)), requested_by="bench")
        )
        publisher.flush()
        staged = all_staged(args.rows) if late else None
        status, curate_cpu = wait_for(settings, run_id, args.rows, args.timeout, staged), None
        if late and status[0] == "running":
            status, curate_cpu = curate_backlog(settings, services, late, run_id, args)
        if status[0] == "running":
            status = wait_for(settings, run_id, args.rows, args.timeout)
        seconds = time.perf_counter() - t0
        cpu_before |= {n: services.started_cpu[n] for n in late if n in services.started_cpu}
        cpu_used = {name: round(v - cpu_before.get(name, 0.0), 1) for name, v in services.cpu().items()}
    finally:
        publisher.close()
    return Measured(run_id, requested, status, seconds, cpu_used, curate_cpu)


def curate_backlog(
    settings: Any, services: Services, curators: list[str], run_id: str, args: argparse.Namespace
) -> tuple[tuple[str, str | None], dict[str, float]]:
    """Start the curators on the staged backlog and wait for its last document: the run's status
    then, and each process's CPU seconds from the curators' start (once consuming) to that point."""
    say("every row staged: starting the curators on the backlog")
    services.start(curators)
    services.wait_ready(curators)
    before = services.cpu() | {n: services.started_cpu[n] for n in curators}
    status = wait_for(settings, run_id, args.rows, args.timeout, all_curated)
    return status, {name: round(v - before.get(name, 0.0), 2) for name, v in services.cpu().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_130_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replicas", type=int, default=2, help="stagers and curators")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--bare-sample", type=int, default=200_000, help="rows for the bare limits")
    parser.add_argument(
        "--curate-backlog",
        action="store_true",
        help="start the curators once every row is staged: curation alone on a backlog, compared with\n"
        "the store's bare insert rate (curate_backlog_vs_mongo) and its CPU per document",
    )
    args = parser.parse_args(argv)

    os.environ.update(NAMESPACE)
    os.environ["LAKE_KAFKA_TOPIC_PREFIX"] = f"bench-{uuid.uuid4().hex[:6]}."
    os.environ["LAKE_MAX_GENERATED_ROWS"] = str(max(args.rows, 1_130_000))
    from lake.cli import bootstrap, reset_stores
    from lake.settings import get_settings

    settings = get_settings()
    csv_path = generated_file(args.rows, args.seed)
    speed = machine_speed()
    say(f"machine speed now (µs per tweet; lower is faster): {json.dumps(speed)}")
    say("resetting the bench namespace (database, buckets bigtech_bench / bench-*)")
    reset_stores(settings)
    bootstrap(settings)
    log_dir = BENCH_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    services = Services(log_dir, args.replicas)
    try:
        measured = measure_run(settings, services, csv_path, args)
    finally:
        services.stop()
        drop_topics(settings)
    if measured.status[0] != "succeeded":
        say(f"run {measured.run_id} {measured.status[0]}: {measured.status[1]}")
        return 1
    print(json.dumps(report(settings, services, csv_path, measured, args) | {"machine_speed": speed}))
    return 0


def report(
    settings: Any, services: Services, csv_path: Path, m: Measured, args: argparse.Namespace
) -> dict[str, Any]:
    """Print the run's figures and the bare limits (measured now, services stopped); the summary."""
    from lake.adapters.run_ledger import RunLedger

    repo = RunLedger(settings.mysql)
    counts = repo.run_counts(m.run_id)
    repo.close()
    stages = stage_windows(settings, m.run_id, m.requested)
    say("measuring the bare limits on the same rows (services stopped)")
    bare = bare_limits(settings, csv_path, args.bare_sample)
    size_mb = csv_path.stat().st_size / 1e6
    curate = "curate_backlog_vs_mongo" if m.curate_cpu is not None else "curate_vs_mongo"
    shares = {
        "ingest": (size_mb / stages["ingest"]["seconds"]) / bare["s3_put"]["mb_per_s"],
        "stage": stages["stage"]["per_s"] / bare["mysql_load_data"]["rows_per_s"],
        "curate_vs_tokenizer": stages["curate"]["per_s"] / bare["tokenizer"]["rows_per_s"],
        curate: stages["curate"]["per_s"] / bare["mongo_insert_many"]["docs_per_s"],
    }
    peak = services.peak_by_service()
    print(f"run {m.run_id}: {args.rows:,} rows in {m.seconds:.1f} s ({args.rows / m.seconds:,.0f} tweets/s)")
    print(f"counts: {json.dumps(counts)}")
    print(f"{'stage':<10}{'rows':>12}{'seconds':>10}{'rows/s':>12}")
    for name, s in stages.items():
        print(f"{name:<10}{s['rows']:>12,.0f}{s['seconds']:>10.1f}{s['per_s']:>12,.0f}")
    print("bare limits (same rows, services stopped):")
    for name, b in bare.items():
        print(f"  {name:<18} {json.dumps(b)}")
    print("stage throughput as a share of its bare limit:")
    for name, share in shares.items():
        print(f"  {name:<24} {share:6.1%}")
    cores = os.cpu_count() or 1
    print(f"CPU seconds in the run ({cores} cores = {cores * m.seconds:.0f} s): {json.dumps(m.cpu_used)}")
    per_tweet = per_unit(m.cpu_used, args.rows)
    print(f"CPU µs per raw row (all replicas of a process together): {json.dumps(per_tweet)}")
    summary = {
        "rows": args.rows,
        "seconds": round(m.seconds, 1),
        "tweets_per_s": round(args.rows / m.seconds, 1),
        "peak_rss_mb": peak,
        "replicas": args.replicas,
        "curators": "after staging (--curate-backlog)" if m.curate_cpu is not None else "with the pipeline",
        "counts": counts,
        "stages": stages,
        "bare": bare,
        "share_of_bare": {k: round(v, 3) for k, v in shares.items()},
        "cpu_seconds": m.cpu_used,
        "cpu_us_per_tweet": per_tweet,
    }
    if m.curate_cpu is not None:
        summary["curate_cpu_us_per_doc"] = per_unit(m.curate_cpu, counts["curated_docs"])
        print(f"curation alone, CPU µs per document: {json.dumps(summary['curate_cpu_us_per_doc'])}")
    print(f"peak RSS (MB, largest replica): {json.dumps(peak)}; at start: {json.dumps(services.started_rss)}")
    print("record these figures in docs/benchmarks.md (machine size, ROWS, commit)")
    return summary


def per_unit(cpu_seconds: dict[str, float], units: int) -> dict[str, float]:
    """CPU µs per row or document, by process and in total."""
    units = max(units, 1)  # a run whose every row was rejected curates nothing
    out = {name: round(v / units * 1e6, 1) for name, v in cpu_seconds.items()}
    out["total"] = round(sum(cpu_seconds.values()) / units * 1e6, 1)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
