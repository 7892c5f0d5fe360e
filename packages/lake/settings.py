"""Typed settings, one block per dependency, read from ``LAKE_*`` environment variables (and ``.env``).

Nothing here connects to anything; composition roots build clients from these values.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lake.transform.clean import Rules

DEV_PLACEHOLDERS = {"lake-dev-password", "lake-dev-secret", "changeme", "change-me", "", "secret"}


def _cfg(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore")


class KafkaSettings(BaseSettings):
    model_config = _cfg("LAKE_KAFKA_")
    bootstrap: str = Field(
        default="127.0.0.1:19092", description="Kafka bootstrap servers (host:port, comma-separated)"
    )
    topic_prefix: str = Field(default="", description="prefix of every topic name (the tests use their own)")
    partitions: int = Field(
        default=6,
        ge=1,
        description="partitions of each topic (bootstrap creates them, or adds the missing ones)",
    )
    replication_factor: int = Field(default=1, ge=1, description="replication factor of created topics")
    group_prefix: str = Field(default="lake", description="prefix of the consumer group names")
    max_attempts: int = Field(
        default=3, ge=1, description="tries of one event whose handler fails before it is dead-lettered"
    )
    retry_backoff_s: float = Field(
        default=0.5, gt=0, description="first wait before a retry; each further wait doubles"
    )
    retry_backoff_max_s: float = Field(default=30.0, gt=0, description="longest single wait between retries")
    store_wait_s: float = Field(
        default=600.0,
        ge=0,
        description="how long a service waits, with back-off, for an unavailable store (Kafka, MongoDB,"
        " S3; MySQL without limit) before dead-lettering the event: seconds since the store first failed"
        " it, the attempts made meanwhile included; these waits do not count as attempts",
    )


class S3Settings(BaseSettings):
    model_config = _cfg("LAKE_S3_")
    endpoint: str = Field(default="http://127.0.0.1:19000", description="S3 endpoint URL (path-style)")
    region: str = Field(default="us-east-1", description="S3 region")
    access_key: str = Field(default="lake-dev", description="S3 access key")
    secret_key: SecretStr = Field(default=SecretStr("lake-dev-secret"), description="S3 secret key")
    raw_bucket: str = Field(default="raw", description="bucket of the raw CSV files")
    staging_bucket: str = Field(
        default="staging", description="bucket of the staged Parquet copy and rejects"
    )
    curated_bucket: str = Field(default="curated", description="bucket of the curated, partitioned Parquet")


class MySQLSettings(BaseSettings):
    model_config = _cfg("LAKE_MYSQL_")
    host: str = Field(default="127.0.0.1", description="MySQL / MariaDB host")
    port: int = Field(default=13306, description="MySQL / MariaDB port")
    user: str = Field(default="lake", description="MySQL user")
    password: SecretStr = Field(default=SecretStr("lake-dev-password"), description="MySQL password")
    database: str = Field(default="bigtech", description="MySQL database of the staging layer")


class MongoSettings(BaseSettings):
    model_config = _cfg("LAKE_MONGO_")
    url: str = Field(default="mongodb://127.0.0.1:27027/", description="MongoDB connection string")
    database: str = Field(default="bigtech_db", description="MongoDB database of the curated layer")
    collection: str = Field(default="tweets", description="MongoDB collection of curated tweets")


class PipelineSettings(BaseSettings):
    model_config = _cfg("LAKE_")
    chunk_rows: int = Field(default=50_000, ge=100, description="records per raw chunk (one raw.ready event)")
    max_generated_rows: int = Field(
        default=5_000_000, ge=1, description="largest generated sample a run may ask for"
    )
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path("data")], description="folders a path source may read from (JSON list)"
    )
    tokenizer: str = Field(
        default="bert-base-uncased", description="WordPiece vocabulary: a name or a vocab.txt path"
    )
    max_tokens: int = Field(default=128, ge=8, le=512, description="token ids kept per tweet (truncation)")
    curator_batch: int = Field(
        default=5_000, ge=100, description="documents the curator tokenises and inserts at a time"
    )
    parquet_max_rows: int = Field(
        default=500_000, ge=1_000, description="rows per compacted curated Parquet file (then a new part)"
    )
    kaggle_dataset: str = Field(
        default="wjia26/big-tech-companies-tweet-sentiment", description="Kaggle dataset of SOURCE=kaggle"
    )
    work_dir: Path = Field(
        default=Path(".lake/work"),
        description="scratch folder of the services; a run's compaction spills its curated rows here"
        " (≈ 0.66 KB per row)",
    )
    sentiment_positive: float = Field(
        default=0.05, ge=-1, le=1, description="polarity at or above which a tweet is positive (stager)"
    )
    sentiment_negative: float = Field(
        default=-0.05, ge=-1, le=1, description="polarity at or below which a tweet is negative (stager)"
    )
    min_clean_text_chars: int = Field(
        default=0,
        ge=0,
        description="a tweet whose clean text is shorter is rejected (clean_text_too_short); 0: no rule",
    )

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> PipelineSettings:
        self.rules()  # raises on negative >= positive
        return self

    def rules(self) -> Rules:
        """The cleaning rules that are settings (a change applies to runs staged or replayed after)."""
        return Rules(self.sentiment_positive, self.sentiment_negative, self.min_clean_text_chars)


class GatewaySettings(BaseSettings):
    model_config = _cfg("LAKE_GATEWAY_")
    host: str = Field(default="127.0.0.1", description="gateway bind address")
    port: int = Field(default=8000, description="gateway port")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS (JSON list)")
    query_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="a list query running longer is stopped (422: narrow it)"
    )
    scan_rows_per_item: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description="a /staging or /curated page reads at most this many index entries per item of"
        " a full page (x (limit + 1)); a sparser query answers 422 query_too_costly (docs/api.md)",
    )
    curated_cache_mb: int = Field(
        default=256,
        ge=0,
        le=65_536,
        description="memory per gateway process for rendered /curated/{id} answers, checked"
        " against the catalogue's revision on every request (0: off; docs/api.md)",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="gateway processes on the port (one event loop, so at most one core, each); metrics"
        " are then summed over them (Prometheus multiprocess mode)",
    )
    mysql_connections: int = Field(
        default=4,
        ge=1,
        le=500,
        description="MySQL connections per gateway process: at most this many of its queries run at"
        " once, a request waits for a free one; about twice the database's cores keeps the API's rate"
        " and leaves an ingestion its share of the server (docs/decisions.md)",
    )
    stall_after_s: float = Field(
        default=600,
        gt=0,
        description="/health reports a layer stalled (200, degraded) when its consumers have had lag"
        " this long and none of its chunks finished meanwhile",
    )


class Settings(BaseSettings):
    """Everything a process may need; each service reads only its blocks."""

    model_config = _cfg("LAKE_")
    environment: Literal["development", "test", "production"] = Field(
        default="development", description="production refuses placeholder secrets"
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    mysql: MySQLSettings = Field(default_factory=MySQLSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            bad = [
                name
                for name, value in (
                    ("LAKE_MYSQL_PASSWORD", self.mysql.password.get_secret_value()),
                    ("LAKE_S3_SECRET_KEY", self.s3.secret_key.get_secret_value()),
                )
                if value in DEV_PLACEHOLDERS
            ]
            if bad:
                raise ValueError(f"placeholder or empty secrets are refused in production: {', '.join(bad)}")
        return self

    def topic(self, name: str) -> str:
        return f"{self.kafka.topic_prefix}{name}"

    def group(self, service: str) -> str:
        return f"{self.kafka.group_prefix}.{self.kafka.topic_prefix}{service}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# Variables read outside the settings classes (process set-up, the local stack, Airflow).
OTHER_ENV: dict[str, tuple[str, str]] = {
    "LAKE_LOG_LEVEL": ("INFO", "log level of the services and the gateway (JSON lines on stdout)"),
    "LAKE_METRICS_PORT": ("0", "port of a service's Prometheus /metrics endpoint; 0 = none"),
    "LAKE_CACHE": ("~/.cache/bigtech-lake", "local stack: downloads and builds, shared by clones"),
    "LAKE_RUN_DIR": (".lake", "local stack: data, logs and PIDs of this checkout"),
    "LAKE_MARIADB_BUFFER_POOL": (
        "3G",
        "local stack: MariaDB's InnoDB buffer pool, allocated as used (the whole dataset's tables ≈ 2.7 GB)",
    ),
    "LAKE_FERRETDB_GOGC": (
        "1000",
        "local stack: FerretDB's Go GC target (docs/decisions.md, FerretDB trap 7)",
    ),
    "LAKE_FERRETDB_GOMEMLIMIT": ("1GiB", "local stack: FerretDB's Go soft memory limit"),
    "LAKE_FERRETDB_INSERT_BATCH": (
        "1000",
        "local stack: documents per FerretDB insert transaction (FerretDB's own: 100;"
        " docs/decisions.md, FerretDB trap 8)",
    ),
    "LAKE_GATEWAY_URL": ("http://127.0.0.1:8000", "Airflow: where the DAG reaches the gateway"),
    "LAKE_GATEWAY_API_KEY": ("", "Airflow: the key the DAG's sensor sends to the gateway (analyst role)"),
    "LAKE_AIRFLOW_VENV": (
        ".venv-airflow",
        "local Airflow: its own virtualenv (make airflow-venv; with make, `AIRFLOW_VENV=` works too)",
    ),
    "LAKE_AIRFLOW_PORT": ("8081", "local Airflow (make airflow): port of its UI and API server on 127.0.0.1"),
    "LAKE_AIRFLOW_SCHEDULE": (
        "@daily",
        "the DAG's schedule (cron or preset; none: triggered runs only); make airflow sets none unless given",
    ),
    "LAKE_TEST_ARTIFACTS": ("artifacts", "tests: where the browser tests keep their screenshots"),
    "LAKE_CHROMIUM": ("chromium on PATH", "tests: the browser the dashboard test drives"),
}


def settings_env() -> dict[str, tuple[str, str]]:
    """Every ``LAKE_*`` variable the settings classes read: name -> (default, description).

    Defaults are the classes' own, whatever the current environment says."""
    out: dict[str, tuple[str, str]] = {}
    for name, field in Settings.model_fields.items():
        block = field.annotation
        if isinstance(block, type) and issubclass(block, BaseSettings):
            prefix = str(block.model_config.get("env_prefix", ""))
            for sub, sub_field in block.model_fields.items():
                value = sub_field.get_default(call_default_factory=True)
                shown = "(secret)" if isinstance(value, SecretStr) else _show(value)
                out[f"{prefix}{sub}".upper()] = (shown, sub_field.description or "")
        else:
            out[f"LAKE_{name}".upper()] = (_show(field.default), field.description or "")
    return out


def _show(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return str(value)
