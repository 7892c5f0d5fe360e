"""MariaDB from Debian's packages, with its own data directory, port and socket (utf8mb4)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Callable

from infra import apt

NAME = "mariadb"


def _user() -> str:
    return os.environ.get("LAKE_MYSQL_USER", "lake")


def _password() -> str:
    return os.environ.get("LAKE_MYSQL_PASSWORD", "lake-dev-password")


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    apt.ensure(["mariadbd", "mariadb-install-db"], ["mariadb-server", "mariadb-client"], log)


def _cnf(data: pathlib.Path, port: int) -> str:
    return f"""[mysqld]
datadir={data / "db"}
socket={data / "mysqld.sock"}
pid-file={data / "mysqld.pid"}
port={port}
bind-address=127.0.0.1
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
local-infile=1
innodb_buffer_pool_size=256M
innodb_log_file_size=256M
innodb_flush_log_at_trx_commit=2
max_connections=300
max_allowed_packet=64M
log-error={data / "error.log"}

[client]
socket={data / "mysqld.sock"}
port={port}
default-character-set=utf8mb4
"""


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    cnf = data / "my.cnf"
    cnf.write_text(_cnf(data, port))
    if (data / "db" / "mysql").exists():
        return
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [_bin("mariadb-install-db"), f"--defaults-file={cnf}", *user, "--auth-root-authentication-method=normal",
         "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    # Create the application user with a temporary server on the socket only.
    proc = subprocess.Popen([_bin("mariadbd"), f"--defaults-file={cnf}", *user, "--skip-networking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = data / "mysqld.sock"
        deadline = time.monotonic() + 30
        sql = (f"CREATE USER IF NOT EXISTS '{_user()}'@'127.0.0.1' IDENTIFIED BY '{_password()}';"
               f"CREATE USER IF NOT EXISTS '{_user()}'@'localhost' IDENTIFIED BY '{_password()}';"
               f"GRANT ALL PRIVILEGES ON *.* TO '{_user()}'@'127.0.0.1';"
               f"GRANT ALL PRIVILEGES ON *.* TO '{_user()}'@'localhost';FLUSH PRIVILEGES;")
        while True:
            done = subprocess.run([shutil.which("mariadb") or "mysql", f"--socket={sock}", "-uroot", "-e", sql],
                                  capture_output=True)
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"[stack] mariadb: could not create the app user: {done.stderr.decode()[-400:]}")
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    user = ["--user=root"] if os.geteuid() == 0 else []
    return [_bin("mariadbd"), f"--defaults-file={data / 'my.cnf'}", *user], {}


def ready(port: int) -> bool:
    try:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=port, user=_user(), password=_password(), connect_timeout=1)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        finally:
            conn.close()
    except Exception:
        return False
