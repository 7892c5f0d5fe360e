"""MariaDB from Debian's packages, with its own data directory, port and socket (utf8mb4).

The same code must run against MySQL 8 in docker-compose, so the server settings stay on the common
ground: utf8mb4 / utf8mb4_unicode_ci, ``local_infile`` on, the application user authenticates with
``mysql_native_password`` over TCP on 127.0.0.1.

- ``install``: ``apt-get install mariadb-server mariadb-client`` once, without starting (or leaving
  running) the system service.
- ``prepare``: ``<data>/my.cnf``; on first use ``mariadb-install-db`` into ``<data>/db.init`` with the
  application user created by ``--extra-file`` (bootstrap mode, no temporary server), then an atomic
  rename to ``<data>/db``. A half-finished init never leaves a ``db`` directory behind.
- ``command``: ``mariadbd`` itself in the foreground (no ``mysqld_safe``); SIGTERM is a clean shutdown.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

NAME = "mariadb"

SYSTEM_PIDFILE = pathlib.Path("/run/mysqld/mysqld.pid")


def _user() -> str:
    return os.environ.get("LAKE_MYSQL_USER", "lake")


def _password() -> str:
    return os.environ.get("LAKE_MYSQL_PASSWORD", "lake-dev-password")


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _have(name: str) -> bool:
    return bool(shutil.which(name)) or pathlib.Path("/usr/sbin", name).exists()


def _as_root() -> list[str]:
    # mariadbd refuses to run as root unless told so; CI containers run everything as root.
    return ["--user=root"] if os.geteuid() == 0 else []


# --- install -----------------------------------------------------------------------------------
def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    if _have("mariadbd") and _have("mariadb-install-db"):
        return
    from infra import apt  # stdlib only; policy-rc.d = 101 while apt runs, sudo -n when not root

    apt.ensure(["mariadbd", "mariadb-install-db"], ["mariadb-server", "mariadb-client"], log)
    _stop_system_service(log)


def _stop_system_service(log: Callable[[str], None]) -> None:
    """Belt and braces: if the package's postinst managed to start the system server, stop it."""
    try:
        pid = int(SYSTEM_PIDFILE.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return
    log(f"stopping the system MariaDB service (pid {pid}) started by the package; we run our own")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for cmd in (["systemctl", "stop", "mariadb"], ["service", "mariadb", "stop"]):
        if shutil.which(cmd[0]) and subprocess.run([*sudo, *cmd], capture_output=True).returncode == 0:
            break
    else:
        subprocess.run([*sudo, "kill", "-TERM", str(pid)], capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(0.2)
    subprocess.run([*sudo, "kill", f"-{signal.SIGKILL.value}", str(pid)], capture_output=True)
    for cmd in (["systemctl", "disable", "mariadb"], ["update-rc.d", "mariadb", "disable"]):
        if shutil.which(cmd[0]):
            subprocess.run([*sudo, *cmd], capture_output=True)


# --- prepare -----------------------------------------------------------------------------------
def _buffer_pool() -> str:
    size = os.environ.get("LAKE_MARIADB_BUFFER_POOL", "3G")
    if not re.fullmatch(r"[0-9]+[KMG]?", size):
        raise ValueError(f"LAKE_MARIADB_BUFFER_POOL={size!r}: a size such as 3G or 512M")
    return size


def _cnf(data: pathlib.Path, port: int) -> str:
    return f"""# written by infra/mariadb_component.py; rewritten by every prepare()
[mysqld]
datadir={data / "db"}
socket={data / "mysqld.sock"}
pid-file={data / "mysqld.pid"}
port={port}
bind-address=127.0.0.1
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
local-infile=1
# the staging tables and the curated catalogue of the whole dataset (≈ 2.7 GB of rows and
# indexes at 1.13M, list items included) stay in memory; allocated as used, so a small dataset
# costs no more (docs/benchmarks.md); LAKE_MARIADB_BUFFER_POOL sets another size
innodb_buffer_pool_size={_buffer_pool()}
# a run of the whole dataset writes ≈ 1.8 GB of redo: with a smaller log, checkpoints force the
# same pages out again and again (≈ 3x the page writes at 256M), and writers can stall on a full log
innodb_log_file_size=2G
innodb_flush_log_at_trx_commit=2
max_connections=300
max_allowed_packet=64M
log-error={data / "error.log"}

[client]
socket={data / "mysqld.sock"}
port={port}
default-character-set=utf8mb4
local-infile=1
"""


def _sql_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _init_sql() -> str:
    user, pw = _sql_str(_user()), _sql_str(_password())
    # mariadb-install-db runs this in bootstrap mode, i.e. with --skip-grant-tables: FLUSH PRIVILEGES
    # loads the freshly created grant tables so that CREATE USER / GRANT are allowed.
    # root keeps only its password-less login as root@localhost, i.e. on the unix socket (admin:
    # mariadb --defaults-file=<data>/my.cnf -uroot); root@<hostname>/127.0.0.1/::1 are dropped.
    lines = [
        "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';",
        "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';",
        "FLUSH PRIVILEGES;",
    ]
    for host in ("'127.0.0.1'", "'localhost'"):
        lines += [
            f"CREATE OR REPLACE USER {user}@{host}"
            f" IDENTIFIED VIA mysql_native_password USING PASSWORD({pw});",
            f"GRANT ALL PRIVILEGES ON *.* TO {user}@{host};",
        ]
    lines.append("FLUSH PRIVILEGES;")
    return "\n".join(lines) + "\n"


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    cnf = data / "my.cnf"
    text = _cnf(data, port)
    if not cnf.exists() or cnf.read_text() != text:
        cnf.write_text(text)
    db = data / "db"
    if (db / "mysql").is_dir():
        return
    if db.exists() and any(db.iterdir()):
        raise SystemExit(f"[stack] mariadb: {db} exists but holds no 'mysql' schema; move it away or reset")
    staging = data / "db.init"
    shutil.rmtree(staging, ignore_errors=True)
    sql = data / "init-user.sql"
    sql.write_text(_init_sql())
    sql.chmod(0o600)
    try:
        done = subprocess.run(
            [
                _bin("mariadb-install-db"),
                f"--defaults-file={cnf}",
                f"--datadir={staging}",
                *_as_root(),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--extra-file={sql}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if done.returncode != 0 or not (staging / "mysql").is_dir():
            shutil.rmtree(staging, ignore_errors=True)
            raise SystemExit(f"[stack] mariadb: mariadb-install-db failed:\n{done.stdout[-2000:]}")
        if db.exists():
            db.rmdir()  # empty, checked above
        staging.rename(db)
    finally:
        sql.unlink(missing_ok=True)


# --- run ---------------------------------------------------------------------------------------
def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    # --defaults-file must come first; mariadbd stays in the foreground and SIGTERM shuts it down.
    return [_bin("mariadbd"), f"--defaults-file={data / 'my.cnf'}", *_as_root()], {}


def ready(port: int) -> bool:
    try:
        import pymysql

        conn = pymysql.connect(
            host="127.0.0.1", port=port, user=_user(), password=_password(), connect_timeout=1
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        finally:
            conn.close()
    except Exception:  # a probe: anything wrong means "not ready"
        return False
