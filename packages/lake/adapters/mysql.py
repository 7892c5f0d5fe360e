"""MySQL / MariaDB connections and versioned migrations (synchronous, PyMySQL)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import pymysql
import pymysql.cursors

from lake.settings import MySQLSettings

log = logging.getLogger(__name__)
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_unicode_ci"  # known to MariaDB and MySQL 8 alike


def batches(rows: Sequence[Any], size: int = 1000) -> Iterable[Sequence[Any]]:
    """``rows`` in slices of ``size`` (``IN (…)`` lists and multi-row statements stay bounded)."""
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def insert_values(cur: Any, head: str, rows: Iterable[str], tail: str = "", max_bytes: int = 1 << 20) -> None:
    """``head VALUES row, row, … tail`` in statements of about ``max_bytes`` at most; each row is
    rendered already (``(literal, …)``: :func:`sql_time`, ``conn.escape``, ``X'…'``).

    What PyMySQL's ``executemany`` does, without escaping every value through its per-value
    encoders: that escaping was 14 % of the curator's CPU (py-spy, docs/benchmarks.md)."""
    values: list[str] = []
    size = 0
    for row in rows:
        values.append(row)
        size += len(row) + 1
        if size >= max_bytes:
            cur.execute(f"{head} VALUES {','.join(values)}{tail}")
            values, size = [], 0
    if values:
        cur.execute(f"{head} VALUES {','.join(values)}{tail}")


def sql_time(ts: datetime) -> str:
    """A time as the SQL literal of its naive UTC ``DATETIME`` (whole seconds). ``isoformat`` is
    C code: ≈ 4x faster than ``strftime``, twice per curated document."""
    if ts.tzinfo is not None:
        ts = naive_utc(ts)
    return f"'{ts.isoformat(' ', 'seconds')}'"


def utc_now() -> datetime:
    """Now, as the naive UTC time a ``DATETIME`` column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(ts: datetime) -> datetime:
    """A time as the naive UTC time a ``DATETIME`` column holds (naive times are UTC already)."""
    if ts.tzinfo is UTC:  # the stager's times (no conversion needed)
        return ts.replace(tzinfo=None)
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def connect(cfg: MySQLSettings, database: bool = True, autocommit: bool = False) -> pymysql.Connection:
    return pymysql.connect(
        host=cfg.host,
        port=cfg.port,
        user=cfg.user,
        password=cfg.password.get_secret_value(),
        database=cfg.database if database else None,
        charset=CHARSET,
        collation=COLLATION,
        autocommit=autocommit,
        connect_timeout=5,
        local_infile=True,
    )


class Connected(Protocol):
    """Anything that hands out the process's synchronous MySQL connection (a :class:`Session`, or a
    repository built on one)."""

    @property
    def conn(self) -> pymysql.Connection: ...


class Session:
    """One lazily opened MySQL connection, reopened when the server closed it; shared by the run
    ledger and the repositories of one process, so that their writes can share a transaction.

    Read committed: the lineage check after ``INSERT IGNORE`` must see rows other replicas
    committed meanwhile, not this transaction's older snapshot."""

    def __init__(self, cfg: MySQLSettings) -> None:
        self.cfg = cfg
        self._conn: pymysql.Connection | None = None

    @classmethod
    def of(cls, db: MySQLSettings | Session) -> Session:
        return db if isinstance(db, Session) else cls(db)

    @property
    def conn(self) -> pymysql.Connection:
        if self._conn is not None and self._conn.open:
            try:
                self._conn.ping(reconnect=False)
            except pymysql.err.Error:  # the server closed an idle connection: open a fresh one
                self._conn.close()
                self._conn = None
        if self._conn is None or not self._conn.open:
            self._conn = connect(self.cfg)
            with self._conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return self._conn

    def rollback(self) -> None:
        """Roll back whatever the connection holds, if it is open (errors ignored)."""
        if self._conn is not None and self._conn.open:
            with contextlib.suppress(pymysql.err.Error):
                self._conn.rollback()

    def close(self) -> None:
        if self._conn is not None and self._conn.open:
            self._conn.close()
        self._conn = None


class OnSession:
    """A store adapter on a :class:`Session` (its own, or one it shares with the process's others)."""

    def __init__(self, db: MySQLSettings | Session) -> None:
        self.db = Session.of(db)

    @property
    def conn(self) -> pymysql.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()


def migrations() -> list[tuple[str, str]]:
    folder = resources.files("lake") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(cfg: MySQLSettings) -> list[str]:
    """Create the database if needed and apply the migrations not applied yet; return their names."""
    with connect(cfg, database=False, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{cfg.database}` CHARACTER SET {CHARSET} COLLATE {COLLATION}"
        )
    applied: list[str] = []
    with connect(cfg, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version VARCHAR(128) NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL)"
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for name, sql in migrations():
            if name in done:
                continue
            for stmt in _statements(sql):
                cur.execute(stmt)
            cur.execute("INSERT INTO schema_migrations VALUES (%s, NOW(3))", (name,))
            applied.append(name)
            log.info("applied migration %s", name)
    return applied
