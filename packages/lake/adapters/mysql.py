"""MySQL / MariaDB connections and versioned migrations (synchronous, PyMySQL)."""

from __future__ import annotations

import logging
from importlib import resources

import pymysql
import pymysql.cursors

from lake.settings import MySQLSettings

log = logging.getLogger(__name__)
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_unicode_ci"  # known to MariaDB and MySQL 8 alike


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
