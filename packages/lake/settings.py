"""Typed settings, one block per dependency, read from ``LAKE_*`` environment variables (and ``.env``).

Nothing here connects to anything; composition roots build clients from these values.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PLACEHOLDERS = {"lake-dev-password", "lake-dev-secret", "changeme", "change-me", "", "secret"}


def _cfg(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore")


class KafkaSettings(BaseSettings):
    model_config = _cfg("LAKE_KAFKA_")
    bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = ""
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    group_prefix: str = "lake"
    max_attempts: int = Field(default=3, ge=1, description="tries of one event before it is dead-lettered")


class S3Settings(BaseSettings):
    model_config = _cfg("LAKE_S3_")
    endpoint: str = "http://127.0.0.1:19000"
    region: str = "us-east-1"
    access_key: str = "lake-dev"
    secret_key: SecretStr = SecretStr("lake-dev-secret")
    raw_bucket: str = "raw"
    staging_bucket: str = "staging"
    curated_bucket: str = "curated"


class MySQLSettings(BaseSettings):
    model_config = _cfg("LAKE_MYSQL_")
    host: str = "127.0.0.1"
    port: int = 13306
    user: str = "lake"
    password: SecretStr = SecretStr("lake-dev-password")
    database: str = "bigtech"


class MongoSettings(BaseSettings):
    model_config = _cfg("LAKE_MONGO_")
    url: str = "mongodb://127.0.0.1:27027/"
    database: str = "bigtech_db"
    collection: str = "tweets"


class PipelineSettings(BaseSettings):
    model_config = _cfg("LAKE_")
    chunk_rows: int = Field(default=50_000, ge=100, description="records per raw chunk (one raw.ready event)")
    max_generated_rows: int = Field(default=5_000_000, ge=1)
    allowed_roots: list[Path] = Field(default_factory=lambda: [Path("data")])
    tokenizer: str = "bert-base-uncased"
    max_tokens: int = Field(default=128, ge=8, le=512)
    kaggle_dataset: str = "wjia26/big-tech-companies-tweet-sentiment"
    work_dir: Path = Path(".lake/work")


class GatewaySettings(BaseSettings):
    model_config = _cfg("LAKE_GATEWAY_")
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Everything a process may need; each service reads only its blocks."""

    model_config = _cfg("LAKE_")
    environment: Literal["development", "test", "production"] = "development"
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
