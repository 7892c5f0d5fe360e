"""FerretDB 1.24 (MongoDB wire protocol) on its SQLite backend, built once from the Go module proxy.

SQLite was measured against FerretDB's PostgreSQL backend for our mix (docs/benchmarks.md): inserts
are equal (~8.6k docs/s), ``_id`` lookups take ~2 ms on SQLite and ~380 ms on PostgreSQL, and it is
one server fewer. The binary is a tiny Go program embedding FerretDB (see ferretdb/main.go).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable

NAME = "ferretdb"
VERSION = "1.24.2"
HERE = pathlib.Path(__file__).resolve().parent / "ferretdb"


def _source_hash() -> str:
    h = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        h.update((HERE / name).read_bytes())
    return h.hexdigest()[:16]


def _binary(cache: pathlib.Path) -> pathlib.Path:
    return cache / f"ferretdb-{VERSION}" / "lake-ferretdb"


def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    binary = _binary(cache)
    marker = binary.with_suffix(".source")
    if binary.exists() and marker.exists() and marker.read_text().strip() == _source_hash():
        return
    go = shutil.which("go")
    if go is None:
        raise SystemExit(
            "[stack] ferretdb: building it needs Go (https://go.dev/dl/ or Debian's golang package)"
        )
    log(f"building FerretDB {VERSION} from the Go module proxy (once, ~1-2 minutes)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "build", "-trimpath", "-o", str(binary), "."],
        cwd=HERE,
        check=True,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    marker.write_text(_source_hash() + "\n")


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    (data / "sqlite").mkdir(parents=True, exist_ok=True)


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    return [
        str(_binary(cache)),
        "-listen",
        f"127.0.0.1:{port}",
        "-handler",
        "sqlite",
        "-sqlite-url",
        f"file:{data / 'sqlite'}/",
    ], {}


def ready(port: int) -> bool:
    try:
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("ping")
            return True
        finally:
            client.close()
    except Exception:
        return False
