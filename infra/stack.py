"""The local real stack: Kafka, MariaDB, FerretDB and an S3 server as plain processes on 127.0.0.1,
plus the four services. ``python -m infra.stack up|down|reset|status|services|test``.

- Downloads and builds are cached in ``$LAKE_CACHE`` (default ``$XDG_CACHE_HOME/bigtech-lake``,
  i.e. ``~/.cache/bigtech-lake``), shared by every clone on the machine.
- Data, logs and PIDs live in ``$LAKE_RUN_DIR`` (default ``.lake/`` in the checkout, git-ignored).
- Ports come from the same settings the services read (``LAKE_KAFKA_BOOTSTRAP``, ``LAKE_MYSQL_PORT``,
  ``LAKE_MONGO_URL``, ``LAKE_S3_ENDPOINT``), so there is one source of truth.
- Starting what is up is a no-op; ``down`` stops by PID only what this checkout started.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

from infra import apt

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("mariadb", "kafka", "ferretdb", "s3")
SERVICES = ("ingestor", "stager", "curator", "gateway")
# FerretDB's: after an upgrade that adds the `_id` column (infra/ferretdb_component.py) it fills that
# column in its tables before it listens, ≈ 40 s per million documents (docs/benchmarks.md)
READY_TIMEOUT = {"kafka": 90.0, "mariadb": 60.0, "ferretdb": 300.0, "s3": 60.0}


def say(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    base = (
        os.environ.get("LAKE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bigtech-lake"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir() -> Path:
    path = Path(os.environ.get("LAKE_RUN_DIR", ROOT / ".lake"))
    for sub in ("data", "logs", "pids"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def ports() -> dict[str, int]:
    from lake.settings import get_settings

    s = get_settings()
    return {
        "kafka": int(s.kafka.bootstrap.split(",")[0].rsplit(":", 1)[1]),
        "mariadb": s.mysql.port,
        "ferretdb": urlparse(s.mongo.url).port or 27017,
        "s3": urlparse(s.s3.endpoint).port or 80,
    }


def component(name: str) -> ModuleType:
    return importlib.import_module(f"infra.{name}_component")


# --- processes ---------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str

    @property
    def pidfile(self) -> Path:
        return run_dir() / "pids" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return run_dir() / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            fields = self.pidfile.read_text().split()
            pid = int(fields[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        if not _alive(pid):
            return None
        if len(fields) > 1:  # the process's start time: a reused PID has another
            return pid if _started_at(pid) == fields[1] else None
        return pid if _ours(pid) else None

    def start(self, argv: list[str], env: dict[str, str]) -> int:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env, "LAKE_STACK_OWNER": str(ROOT)},
                cwd=ROOT,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid} {_started_at(proc.pid)}\n")
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        # started in a session of its own: the signal goes to its children too (Airflow's workers)
        group = _group_leader(pid)
        (os.killpg if group else os.kill)(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            say(f"{self.name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s: killing it")
            os.kill(pid, signal.SIGKILL)
        if group:  # children that outlived it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        return True

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _started_at(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``), or "" without it.
    With the PID it names one process, even after the PID is reused; unlike the environment, a
    process cannot rewrite it (Airflow's ``setproctitle`` overwrites its environment's memory)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _ours(pid: int) -> bool:
    """The PID belongs to a process this checkout started (PIDs are reused after reboots)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return f"LAKE_STACK_OWNER={ROOT}".encode() in env


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: Proc | None = None, note_every: float = 15.0
) -> None:
    """Wait for ``check``; every ``note_every`` seconds of waiting, say so (a server may take a
    while, e.g. FerretDB upgrading its tables once after an upgrade), naming its log."""
    start = time.monotonic()
    deadline, note = start + timeout, start + note_every
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.pid() is None:
            raise SystemExit(f"[stack] {what} exited during start; last log lines:\n{proc.tail()}")
        if time.monotonic() >= note:
            where = f"; its log: {proc.logfile}" if proc is not None else ""
            say(f"{what}: still starting after {time.monotonic() - start:.0f}s (up to {timeout:.0f}s){where}")
            note += note_every
        time.sleep(0.25)
    raise SystemExit(
        f"[stack] {what} not ready after {timeout:.0f}s; last log lines:\n{proc.tail() if proc else ''}"
    )


# --- servers -----------------------------------------------------------------------------------
def up_servers(names: tuple[str, ...] = SERVERS) -> list[str]:
    """Install, prepare and start the servers not running yet; return the ones this call started."""
    cache, data = cache_dir(), run_dir() / "data"
    port = ports()
    started: list[str] = []
    for name in names:
        comp = component(name)
        proc = Proc(name)
        if proc.pid() is not None and comp.ready(port[name]):
            say(f"{name}: already running on 127.0.0.1:{port[name]}")
            continue
        comp.install(cache, lambda m, n=name: say(f"{n}: {m}"))
        (data / name).mkdir(parents=True, exist_ok=True)
        comp.prepare(cache, data / name, port[name])
        if comp.ready(port[name]):
            raise SystemExit(
                f"[stack] port {port[name]} already answers as {name} but not from this checkout; "
                f"stop that server or choose another port in your .env"
            )
        argv, env = comp.command(cache, data / name, port[name])
        pid = proc.start(argv, env)
        say(f"{name}: started pid {pid}, waiting for 127.0.0.1:{port[name]}")
        started.append(name)
    for name in started:
        probe: Callable[[], bool] = functools.partial(component(name).ready, port[name])
        wait_until(probe, READY_TIMEOUT[name], name, Proc(name))
        say(f"{name}: ready")
    return started


def down(names: tuple[str, ...] | list[str] = SERVICES + SERVERS) -> None:
    for name in names:
        if Proc(name).stop():
            say(f"{name}: stopped")
    for pidfile in (run_dir() / "pids").glob("*.pid"):
        ours = pidfile.stem in names or any(pidfile.stem.startswith(f"{n}-") for n in names)
        if ours and Proc(pidfile.stem).stop():
            say(f"{pidfile.stem}: stopped")


def bootstrap() -> None:
    subprocess.run([sys.executable, "-m", "lake.cli", "bootstrap"], check=True, cwd=ROOT)


# --- services ----------------------------------------------------------------------------------
def service_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "PYTHONUNBUFFERED": "1"}


def up_services(replicas: int = 1) -> None:
    metrics = {"ingestor": 9101, "stager": 9111, "curator": 9121}
    for svc in SERVICES:
        count = replicas if svc in ("stager", "curator") else 1
        for i in range(count):
            name = svc if i == 0 else f"{svc}-{i + 1}"
            proc = Proc(name)
            if proc.pid() is not None:
                say(f"{name}: already running")
                continue
            env = service_env()
            if svc == "gateway":
                argv = [sys.executable, "-m", "services.gateway"]
            else:
                argv = [sys.executable, "-m", f"services.{svc}"]
                env["LAKE_METRICS_PORT"] = str(metrics[svc] + i)
            say(f"{name}: started pid {proc.start(argv, env)}")
    from lake.settings import get_settings

    gw = get_settings().gateway
    wait_until(lambda: _http_ok(f"http://{gw.host}:{gw.port}/health"), 60, "gateway", Proc("gateway"))
    say(f"gateway: ready on http://{gw.host}:{gw.port}")


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local URL from settings
            return int(resp.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500 or exc.code == 503
    except OSError:
        return False


def status() -> int:
    port = ports()
    for name in SERVERS:
        pid = Proc(name).pid()
        ok = component(name).ready(port[name])
        print(f"{name:10} pid={pid or '-':<8} port={port[name]:<6} {'ready' if ok else 'DOWN'}")
    for pidfile in sorted((run_dir() / "pids").glob("*.pid")):
        if pidfile.stem not in SERVERS:
            pid = Proc(pidfile.stem).pid()
            print(f"{pidfile.stem:10} pid={pid or '-':<8} {'running' if pid else 'stopped'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="install what is missing, start the servers, create topics/buckets/schema")
    sv = sub.add_parser("services", help="start the four services (after up)")
    sv.add_argument("--replicas", type=int, default=1, help="stager and curator replicas")
    sub.add_parser("down", help="stop everything this checkout started (data is kept)")
    sub.add_parser("reset", help="down, then delete the local data")
    sub.add_parser("status", help="what runs, on which port")
    t = sub.add_parser("test", help="start what is missing, run a command, stop what this call started")
    t.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.cmd == "up":
        up_servers()
        bootstrap()
    elif args.cmd == "services":
        up_services(args.replicas)
    elif args.cmd == "down":
        down(("airflow", *SERVICES, *SERVERS))
    elif args.cmd == "reset":
        down(("airflow", *SERVICES, *SERVERS))
        shutil.rmtree(run_dir() / "data", ignore_errors=True)
        shutil.rmtree(run_dir() / "work", ignore_errors=True)
        say("local data deleted")
    elif args.cmd == "status":
        return status()
    elif args.cmd == "test":
        # the compose file is validated with Debian's docker-compose, which needs no engine
        apt.ensure(["docker-compose"], ["docker-compose"], say)
        # the dashboard is tested in a real headless browser: Debian's chromium (Playwright drives it)
        apt.ensure(["chromium"], ["chromium"], say)
        started = up_servers()
        try:
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            return subprocess.run(command, cwd=ROOT).returncode
        finally:
            down(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
