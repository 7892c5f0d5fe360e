"""Which store an exception says is unavailable (unreachable, restarting, connection lost), so the
consumer loop can wait for it with back-off instead of spending the event's attempts.

Only connection-level failures count: a deadlock, a constraint violation or a missing bucket is a
failure of the work, not of the store, and keeps the usual attempts."""

from __future__ import annotations

import botocore.exceptions
import kafka.errors
import pymongo.errors
import pymysql.err

# client codes of a lost or refused MySQL connection; 1053 server shutdown, 1927 connection killed
MYSQL_GONE = {2002, 2003, 2006, 2013, 2055, 1053, 1927}
KAFKA_GONE = (
    kafka.errors.KafkaConnectionError,
    kafka.errors.KafkaTimeoutError,
    kafka.errors.BrokerNotAvailableError,
    kafka.errors.NodeNotReadyError,
    kafka.errors.RequestTimedOutError,
)
S3_GONE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
)


def _store_of_one(exc: BaseException) -> str | None:
    if isinstance(exc, pymysql.err.InterfaceError):
        return "mysql"
    if isinstance(exc, pymysql.err.OperationalError):
        return "mysql" if exc.args and exc.args[0] in MYSQL_GONE else None
    if isinstance(exc, pymongo.errors.ConnectionFailure):  # AutoReconnect, NetworkTimeout, selection
        return "mongodb"
    if isinstance(exc, S3_GONE):
        return "s3"
    if isinstance(exc, KAFKA_GONE):
        return "kafka"
    return None


def unavailable_store(exc: BaseException) -> str | None:
    """``"kafka"``, ``"mysql"``, ``"mongodb"`` or ``"s3"`` when ``exc`` (or what caused it) is that
    store being unreachable; ``None`` otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (store := _store_of_one(current)) is not None:
            return store
        current = current.__cause__ or current.__context__
    return None
