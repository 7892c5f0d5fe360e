"""The gateway's clients, created in the lifespan (never at import) and closed with it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import aioboto3
import asyncmy
from kafka import KafkaAdminClient
from pymongo import AsyncMongoClient

from lake.adapters.objectstore import S3ObjectStore, client_config
from lake.settings import MySQLSettings, Settings
from services.gateway.doc_cache import DocCache

T = TypeVar("T")
log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The read side could not reach ``store`` (its client's error is the cause): answered 503
    naming the store, the detail only in the log (``errors.install``)."""

    def __init__(self, store: str) -> None:
        super().__init__(f"{store} unavailable")
        self.store = store


@dataclass
class SharedAnswer:
    """One computation answers every caller for ``ttl`` seconds (single flight): a burst of callers
    or a load balancer never multiplies the load on a store. Callers that arrive while it runs wait
    for that same computation, and share its failure too (a store that is down is asked once, not
    once per caller); a failure is not kept afterwards."""

    ttl: float
    value: Any = None
    at: float = -math.inf
    running: asyncio.Future[Any] | None = None

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() - self.at <= self.ttl:
            return cast(T, self.value)
        if self.running is None:
            self.running = asyncio.ensure_future(self._refresh(compute))
        # shield: a caller that gives up (client gone) does not cancel the others' computation
        return cast(T, await asyncio.shield(self.running))

    async def _refresh(self, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await compute()
            self.value, self.at = value, time.monotonic()
            return value
        finally:
            self.running = None


@dataclass
class Stores:
    settings: Settings
    mysql: Any  # asyncmy.Pool: acquire() -> a connection whose cursor() is an async context
    mongo: AsyncMongoClient[dict[str, Any]]
    s3: Any
    s3_sync: S3ObjectStore  # streaming reads parsed by the pipeline's own CSV reader, in a thread
    # /health's own MySQL connection (a pool of one). The main pool has LAKE_GATEWAY_MYSQL_CONNECTIONS
    # connections, all busy under load: a probe queued behind slow pages would time out and report a
    # healthy server down
    mysql_health: Any
    _kafka: KafkaAdminClient | None = None
    # kafka-python's admin client is not thread-safe: one call at a time, from any request.
    kafka_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # /health probes, /stats totals and the dashboard's Kafka snapshot are shared by concurrent callers
    health: SharedAnswer = field(default_factory=lambda: SharedAnswer(ttl=1.0))
    stats: SharedAnswer = field(default_factory=lambda: SharedAnswer(ttl=1.0))
    pipeline: SharedAnswer = field(default_factory=lambda: SharedAnswer(ttl=2.0))
    # /health: since when each layer's consumers have had lag (monotonic), to tell a stall
    lag_since: dict[str, float] = field(default_factory=dict)
    # curated tokenizers' records by key (lake.transform.curated_store), loaded when a new one shows
    tokenizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # rendered /curated documents by (twitter_id, revision); sized from the settings in __post_init__
    curated_cache: DocCache = field(init=False)
    # verified API keys: SHA-256 of the key -> (role, monotonic expiry); see deps.KEY_CACHE_TTL_S
    key_cache: dict[str, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.curated_cache = DocCache(self.settings.gateway.curated_cache_mb << 20)

    @property
    def tweets(self) -> Any:
        return self.mongo[self.settings.mongo.database][self.settings.mongo.collection]

    async def kafka(self) -> KafkaAdminClient:
        if self._kafka is None:
            self._kafka = await asyncio.to_thread(
                KafkaAdminClient,
                bootstrap_servers=self.settings.kafka.bootstrap,
                client_id="lake-gateway",
                request_timeout_ms=5000,
                # the first metadata fetch: a broker that cannot be reached is a 503 after 5 s, not
                # kafka-python's default 30 s
                bootstrap_timeout_ms=5000,
            )
        return self._kafka

    async def with_kafka(self, call: Callable[[KafkaAdminClient], T]) -> T:
        """``call`` with the gateway's one admin client, in a thread, one call at a time
        (kafka-python's client is not thread-safe). A client that failed is closed under the same
        lock (no other call is using it), and the next call makes another."""
        async with self.kafka_lock:
            try:
                return await asyncio.to_thread(call, await self.kafka())
            except Exception:
                try:
                    await self.close_kafka()
                except Exception:  # the call's error is the one to answer with
                    log.exception("closing the Kafka admin client failed")
                raise

    async def close_kafka(self) -> None:
        if self._kafka is not None:
            client, self._kafka = self._kafka, None
            await asyncio.to_thread(client.close)


async def _statement_limit(settings: Settings) -> str:
    """The session setting that stops a statement after the query timeout (MariaDB and MySQL
    spell it differently)."""
    m = settings.mysql
    conn = await asyncmy.connect(
        host=m.host, port=m.port, user=m.user, password=m.password.get_secret_value(), connect_timeout=5
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT VERSION()")
            row = await cur.fetchone()
    finally:
        await conn.ensure_closed()
    seconds = settings.gateway.query_timeout_s
    if row is not None and "mariadb" in str(row[0]).lower():
        return f"SET SESSION max_statement_time = {seconds:.6f}"
    return f"SET SESSION max_execution_time = {max(1, int(seconds * 1000))}"


async def mysql_pool(m: MySQLSettings, maxsize: int, **options: Any) -> Any:
    """An asyncmy pool on the configured database (autocommit, utf8mb4).

    asyncmy rather than aiomysql: its protocol code is compiled (Cython), ≈ 4.7x less client CPU
    per 51-row page (0.42 vs 1.98 ms measured here), and page parsing was the gateway's largest cost
    (docs/decisions.md). Same DB-API shape: a pool, acquire(), async cursors."""
    return await asyncmy.create_pool(
        host=m.host,
        port=m.port,
        user=m.user,
        password=m.password.get_secret_value(),
        database=m.database,
        charset="utf8mb4",
        autocommit=True,
        minsize=1,
        maxsize=maxsize,
        **options,
    )


async def close_pool(pool: Any) -> None:
    pool.close()
    await pool.wait_closed()


async def open_stores(settings: Settings, stack: AsyncExitStack) -> Stores:
    m = settings.mysql
    limit = await _statement_limit(settings)
    options: dict[str, Any] = {"init_command": limit, "connect_timeout": 5, "pool_recycle": 600}
    pool = await mysql_pool(m, maxsize=settings.gateway.mysql_connections, **options)
    stack.push_async_callback(close_pool, pool)
    health_pool = await mysql_pool(m, maxsize=1, **options)
    stack.push_async_callback(close_pool, health_pool)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo.url, serverSelectionTimeoutMS=3000, tz_aware=True, maxPoolSize=50
    )
    stack.push_async_callback(mongo.close)
    session = aioboto3.Session()
    s3 = await stack.enter_async_context(
        session.client(
            "s3",
            endpoint_url=settings.s3.endpoint,
            region_name=settings.s3.region,
            aws_access_key_id=settings.s3.access_key,
            aws_secret_access_key=settings.s3.secret_key.get_secret_value(),
            config=client_config(),
        )
    )
    stores = Stores(settings, pool, mongo, s3, S3ObjectStore.from_settings(settings.s3), health_pool)
    stack.push_async_callback(stores.close_kafka)
    return stores
