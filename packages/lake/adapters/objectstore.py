"""S3 (any S3-compatible server, path-style): buckets, objects, byte ranges. Synchronous, for services."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from lake.settings import S3Settings


class ObjectStore(Protocol):
    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = ...) -> None: ...
    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...


def client_config() -> Config:
    # Path-style works on every S3 server; checksums only when required keeps older servers happy.
    return Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=16,
    )


def make_client(cfg: S3Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=cfg.endpoint,
        region_name=cfg.region,
        aws_access_key_id=cfg.access_key,
        aws_secret_access_key=cfg.secret_key.get_secret_value(),
        config=client_config(),
    )


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, cfg: S3Settings) -> S3ObjectStore:
        return cls(make_client(cfg))

    def ensure_bucket(self, bucket: str) -> None:
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=bucket)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def upload_file(self, bucket: str, key: str, path: Path) -> None:
        self.client.upload_file(str(path), bucket, key)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        """A local file as one object in one request, streamed from disk (``upload_file`` splits
        a file above 8 MiB into parts: three requests or more, each with its fixed cost)."""
        with open(path, "rb") as body:
            self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def get_file(self, bucket: str, key: str, path: Path, chunk_size: int = 1 << 20) -> None:
        """An object into a local file, streamed: never whole in memory."""
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            with open(path, "wb") as out:
                for chunk in body.iter_chunks(chunk_size):
                    out.write(chunk)
        finally:
            body.close()

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object."""
        if end <= start:
            return b""
        resp = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        data: bytes = resp["Body"].read()
        return data

    def get_bytes(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def iter_lines(self, bucket: str, key: str, chunk_size: int = 1 << 16) -> Generator[bytes, None, None]:
        """The object's lines, split on ``\\n`` only (each keeps it), streamed: the body is read in
        chunks and closed when the generator is closed or exhausted. (botocore's ``iter_lines``
        also splits on ``\\r`` and other separators, which can sit inside a quoted CSV field.)"""
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            rest = b""
            for chunk in body.iter_chunks(chunk_size):
                parts = (rest + chunk).split(b"\n")
                rest = parts.pop()
                for part in parts:
                    yield part + b"\n"
            if rest:
                yield rest
        finally:
            body.close()

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = [{"Key": o["Key"]} for o in self.list_keys(bucket, prefix)]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
        return len(keys)
