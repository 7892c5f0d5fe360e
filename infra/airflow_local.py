"""Airflow 3, in its own virtualenv, against the local stack: ``python -m infra.airflow_local``.

Airflow pins hundreds of packages of its own, so it never shares the platform's environment: ``make
airflow-venv`` installs ``airflow/requirements.txt`` into ``$LAKE_AIRFLOW_VENV`` (default
``.venv-airflow``). Its home (SQLite metadata database, logs) is ``$LAKE_RUN_DIR/airflow``.

``run`` executes one DAG run of ``bigtech_ingest`` with ``airflow dags test`` (every task in this
process, the deferred sensor's trigger inline) against the running local stack and prints the
gateway's report of the platform run as the last line. The test suite drives the same functions.

``up`` (``make airflow``) starts Airflow itself beside the running local stack: the API server and
UI on ``127.0.0.1:$LAKE_AIRFLOW_PORT`` (default 8081), the scheduler (LocalExecutor), the DAG
processor and the triggerer (the deferrable sensor waits there), each a process of the stack
(``make status`` lists them, ``make down`` stops them). Its home is ``$LAKE_RUN_DIR/data/airflow``
(``make reset`` deletes it). One login, ``admin``, with a password generated once and kept in that
home (Airflow's simple auth manager); the Kafka connection and an analyst key of the gateway are set
up the same way as for ``run``. Starting it again when it runs does nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from lake.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "airflow" / "dags"
PLUGINS = ROOT / "airflow" / "plugins"  # the DAG's helper modules: on sys.path in every Airflow process
DAG_ID = "bigtech_ingest"
# Airflow's processes for ``up``, in start order (the API server first: the others report to it)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"


def venv() -> Path:
    path = Path(os.environ.get("LAKE_AIRFLOW_VENV", ROOT / ".venv-airflow"))
    if not (path / "bin" / "airflow").exists():
        raise SystemExit(f"[airflow] no Airflow in {path}: run `make airflow-venv` first")
    return path


def airflow_env(settings: Settings, home: Path, gateway_url: str, api_key: str) -> dict[str, str]:
    """The environment of every Airflow command: the DAG folder of this checkout, a SQLite metadata
    database in ``home``, the Kafka connection and the gateway, all from the platform's settings."""
    home.mkdir(parents=True, exist_ok=True)
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": settings.kafka.bootstrap}}
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_LAKE_KAFKA": json.dumps(kafka),
        "LAKE_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "LAKE_GATEWAY_URL": gateway_url,
        "LAKE_GATEWAY_API_KEY": api_key,
        "PYTHONWARNINGS": "ignore",
    }


def airflow(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """One ``airflow`` CLI call; output captured (returned) so callers can show it on failure."""
    return subprocess.run(
        [str(venv() / "bin" / "airflow"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def migrate(env: dict[str, str]) -> None:
    done = airflow(["db", "migrate"], env)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def local_dags(env: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The DAG folder parsed by Airflow itself: (import errors, DAGs)."""
    errors = airflow(["dags", "list-import-errors", "--local", "-o", "json"], env)
    dags = airflow(["dags", "list", "--local", "-o", "json"], env)
    for done in (errors, dags):
        if done.returncode != 0:
            raise RuntimeError(f"airflow {done.args[1:]} failed:\n{done.stderr[-3000:]}")
    return _json_tail(errors.stdout), _json_tail(dags.stdout)


def _json_tail(out: str) -> list[dict[str, Any]]:
    """The JSON document of a CLI answer (Airflow may print warnings before it)."""
    start = min((i for i in (out.find("["), out.find("{")) if i >= 0), default=-1)
    if start < 0:
        return []  # "No data found"
    value = json.loads(out[start:])
    return value if isinstance(value, list) else [value]


DAG_FACTS = """
import json, sys
sys.path.insert(0, sys.argv[2])
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(sys.argv[1]).dags["bigtech_ingest"]
print(json.dumps({
    "schedule": str(dag.schedule), "cron": dag.timetable.expression,
    "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
    "params": sorted(dag.params.keys()),
    "tasks": {t.task_id: {"type": type(t).__name__, "retries": t.retries,
                          "retry_delay_s": t.retry_delay.total_seconds()} for t in dag.tasks},
}))
"""


def dag_facts(env: dict[str, str]) -> dict[str, Any]:
    """Schedule, catch-up, params and each task's type and retries, as Airflow itself parses them."""
    done = subprocess.run(
        [str(venv() / "bin" / "python"), "-c", DAG_FACTS, str(DAGS), str(PLUGINS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"parsing the DAG failed:\n{done.stderr[-3000:]}")
    facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return facts


def dags_test(
    env: dict[str, str], logical_date: str, conf: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return airflow(["dags", "test", DAG_ID, logical_date, "--conf", json.dumps(conf)], env)


def client() -> ModuleType:
    """The DAG's own standard-library client (``airflow/plugins/bigtech_lake_client.py``)."""
    spec = importlib.util.spec_from_file_location("bigtech_lake_client", PLUGINS / "bigtech_lake_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_id(logical_date: str) -> str:
    """The first platform run id the DAG derives from a logical date (its own rule)."""
    when = datetime.fromisoformat(logical_date)
    return str(client().run_id_for(DAG_ID, when if when.tzinfo else when.replace(tzinfo=UTC), ""))


def run_report(env: dict[str, str], logical_date: str) -> dict[str, Any]:
    """The gateway's report of the run the DAG run of this date followed (its latest attempt)."""
    lake = client()
    saved = {k: os.environ.get(k) for k in ("LAKE_GATEWAY_URL", "LAKE_GATEWAY_API_KEY")}
    os.environ.update({k: env[k] for k in saved})
    try:
        report: dict[str, Any] = lake.run_report(lake.latest_attempt(run_id(logical_date)))
        return report
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _secret(path: Path, make: Any) -> str:
    """A value generated once by ``make()`` and kept in ``path`` (mode 600, in the git-ignored run
    directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def gateway_key(settings: Settings, home: Path) -> str:
    """An analyst key for Airflow's sensor, created once and kept in ``home``."""
    from lake.cli import create_key

    return _secret(home / "gateway-key", lambda: create_key(settings, "airflow (local)", "analyst"))


def serve_env(
    settings: Settings, home: Path, gateway_url: str, api_key: str, port: int, **extra: str
) -> dict[str, str]:
    """``airflow_env`` plus what Airflow's long-running processes share: the API server's address
    (the executor's workers report there), one JWT secret, the LocalExecutor, and one admin login
    whose password is generated once (``home/passwords.json``). The DAG is scheduled only when
    ``LAKE_AIRFLOW_SCHEDULE`` says so (default ``none`` here: on a development machine a run
    happens when someone triggers one); ``extra`` adds or overrides variables."""
    passwords = home / "passwords.json"
    _secret(passwords, lambda: json.dumps({USER: secrets.token_urlsafe(12)}))
    jwt_secret = _secret(home / "jwt-secret", lambda: secrets.token_urlsafe(32))
    return {
        **airflow_env(settings, home, gateway_url, api_key),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "LAKE_AIRFLOW_SCHEDULE": os.environ.get("LAKE_AIRFLOW_SCHEDULE", "none"),
        **extra,
    }


def password(home: Path) -> str:
    value: str = json.loads((home / "passwords.json").read_text())[USER]
    return value


def healthy(port: int) -> bool:
    """The API server answers its health endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def processes(prefix: str = "airflow") -> dict[str, Any]:
    """Airflow's processes as the stack's ``Proc`` objects (``<prefix>-<component>``)."""
    from infra.stack import Proc

    return {name: Proc(f"{prefix}-{name}") for name in COMPONENTS}


def memory_mb(pids: list[int]) -> float:
    """Resident memory of these processes and all their descendants, in MB (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = set(pids), list(pids)
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        todo += children
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def up(settings: Settings, home: Path, port: int, prefix: str = "airflow", **extra: str) -> dict[str, str]:
    """Start every Airflow process not running yet (``<prefix>-<component>`` in the stack's PID
    files), wait for the API server; return the environment they run with (``extra`` added)."""
    from infra.stack import say, wait_until

    gateway = f"http://127.0.0.1:{settings.gateway.port}"
    env = serve_env(settings, home, gateway, gateway_key(settings, home), port, **extra)
    procs = processes(prefix)
    if all(p.pid() is not None for p in procs.values()) and healthy(port):
        say(f"airflow: already running on http://127.0.0.1:{port}")
        return env
    t0 = time.monotonic()
    say("airflow: migrating its metadata database")
    migrate(env)
    airflow_bin = str(venv() / "bin" / "airflow")
    for name, proc in procs.items():
        if proc.pid() is None:
            say(f"airflow: {name} started pid {proc.start([airflow_bin, name], env)}")
    wait_until(lambda: healthy(port), 180, "airflow api-server", procs["api-server"])
    pids = [pid for p in procs.values() if (pid := p.pid()) is not None]
    say(f"airflow: ready in {time.monotonic() - t0:.0f} s; {memory_mb(pids):,.0f} MB resident")
    return env


def down(prefix: str = "airflow") -> None:
    from infra.stack import say

    for name, proc in processes(prefix).items():
        if proc.stop():
            say(f"airflow: {name} stopped")


def main(argv: list[str] | None = None) -> int:
    from infra.stack import run_dir, say
    from lake.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m infra.airflow_local", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one DAG run with `airflow dags test` against the running stack")
    r.add_argument("--date", default=datetime.now().strftime("%Y-%m-%d"), help="logical date (YYYY-MM-DD)")
    r.add_argument("--conf", default='{"source": "generated"}', help="the DAG run's conf (JSON)")
    u = sub.add_parser("up", help="start Airflow's UI, scheduler, DAG processor and triggerer")
    u.add_argument("--port", type=int, default=int(os.environ.get("LAKE_AIRFLOW_PORT", "8081")))
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.cmd == "up":
        home = run_dir() / "data" / "airflow"
        up(settings, home, args.port)
        say(f"airflow: UI on http://127.0.0.1:{args.port}")
        say(f"airflow: log in as {USER!r}, password in {home / 'passwords.json'}")
        say(f"airflow: trigger {DAG_ID} with a conf such as " + '{"source": "generated", "rows": 20000}')
        say(f"airflow: logs in {run_dir() / 'logs'}/airflow-*.log; `make down` stops it")
        return 0
    gateway = f"http://127.0.0.1:{settings.gateway.port}"
    home = run_dir() / "airflow"
    env = airflow_env(settings, home, gateway, gateway_key(settings, home))
    say("airflow: migrating its metadata database")
    migrate(env)
    say(f"airflow: dags test {DAG_ID} {args.date} --conf {args.conf}")
    done = dags_test(env, args.date, json.loads(args.conf))
    (home / "last-dags-test.log").write_text(done.stdout + done.stderr)
    outcome = "succeeded" if done.returncode == 0 else "FAILED"
    say(f"airflow: DAG run {outcome}; log in {home}/last-dags-test.log")
    report = run_report(env, args.date)  # status "requested" when the DAG failed before publishing
    keys = ("run_id", "status", "raw_rows", "staged_rows", "rejected_rows", "duplicate_rows", "curated_docs")
    print(json.dumps({k: report[k] for k in keys if k in report}))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
