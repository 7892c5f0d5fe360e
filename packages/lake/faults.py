"""What a store's exception means, for every process: which store is unavailable (unreachable,
restarting, connection lost) — the consumer loop waits for it with back-off instead of spending the
event's attempts, the gateway answers 503 naming it — and whether a statement ran out of its time
limit (the gateway answers 422 ``query_too_costly``).

Only connection-level failures count as unavailable: a deadlock, a constraint violation or a missing
bucket is a failure of the work, not of the store, and keeps the usual attempts. The services' MySQL
driver is PyMySQL, the gateway's asyncmy: both are read here."""

from __future__ import annotations

from collections.abc import Iterator

import asyncmy.errors
import botocore.exceptions
import kafka.errors
import pymongo.errors
import pymysql.err

# client codes of a lost or refused MySQL connection; 1053 server shutdown, 1927 connection killed
MYSQL_GONE = {2002, 2003, 2006, 2013, 2055, 1053, 1927, 1040}  # 1040: too many connections
STATEMENT_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
MYSQL_INTERFACE = (pymysql.err.InterfaceError, asyncmy.errors.InterfaceError)
MYSQL_SERVER = (
    pymysql.err.OperationalError,
    pymysql.err.InternalError,
    asyncmy.errors.OperationalError,
    asyncmy.errors.InternalError,
)
KAFKA_GONE = (
    kafka.errors.KafkaConnectionError,
    kafka.errors.KafkaTimeoutError,
    kafka.errors.BrokerNotAvailableError,
    kafka.errors.NodeNotReadyError,
    kafka.errors.RequestTimedOutError,
)
S3_GONE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.HTTPClientError,  # connection closed, read time-out, proxy, TLS
)


def _mysql_code(exc: BaseException) -> object:
    return exc.args[0] if isinstance(exc, MYSQL_SERVER) and exc.args else None


def _store_of_one(exc: BaseException) -> str | None:
    if isinstance(exc, MYSQL_INTERFACE):
        return "mysql"
    if _mysql_code(exc) in MYSQL_GONE:
        return "mysql"
    if isinstance(exc, pymongo.errors.ConnectionFailure):  # AutoReconnect, NetworkTimeout, selection
        return "mongodb"
    if isinstance(exc, S3_GONE):
        return "s3"
    if isinstance(exc, KAFKA_GONE):
        return "kafka"
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def unavailable_store(exc: BaseException) -> str | None:
    """``"kafka"``, ``"mysql"``, ``"mongodb"`` or ``"s3"`` when ``exc`` (or what caused it) is that
    store being unreachable; ``None`` otherwise."""
    for one in _chain(exc):
        if (store := _store_of_one(one)) is not None:
            return store
    return None


def ran_too_long(exc: BaseException) -> bool:
    """``exc`` (or what caused it) is a statement stopped at its time limit: MySQL's
    ``max_execution_time``, MariaDB's ``max_statement_time``, MongoDB's ``maxTimeMS``."""
    return any(
        _mysql_code(one) in STATEMENT_TIMEOUT or isinstance(one, pymongo.errors.ExecutionTimeout)
        for one in _chain(exc)
    )
