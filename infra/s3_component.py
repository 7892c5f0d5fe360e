"""An S3 endpoint that keeps its objects on disk: s3proxy 4.x (Maven Central, main class
org.gaul.s3proxy.Main) with its filesystem-nio2 store, path-style, AWS v2/v4 signatures with the
development key pair from the environment (LAKE_S3_ACCESS_KEY / LAKE_S3_SECRET_KEY, defaults
lake-dev / lake-dev-secret).

Clients need only path-style addressing; boto3's default CRC32 request checksums (header, or
aws-chunked trailer over TLS) are accepted and verified. Over plain HTTP botocore signs the whole
payload, and s3proxy then holds each PUT / UploadPart body in the heap to check its SHA-256: that body
is capped at 16 MiB below, so that many concurrent large PUTs cannot exhaust the 384 MiB heap.
upload_file / upload_fileobj (8 MiB parts) are unaffected; a single put_object over 16 MiB gets
MaxMessageLengthExceeded (use upload_fileobj).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable

NAME = "s3"
VERSION = "4.1.0"
HERE = pathlib.Path(__file__).resolve().parent / "s3proxy"
MAX_SIGNED_BODY = 16 * 1024 * 1024


def _lib(cache: pathlib.Path) -> pathlib.Path:
    return cache / f"s3proxy-{VERSION}" / "lib"


def _keys() -> tuple[str, str]:
    return (
        os.environ.get("LAKE_S3_ACCESS_KEY", "lake-dev"),
        os.environ.get("LAKE_S3_SECRET_KEY", "lake-dev-secret"),
    )


def _stamp() -> str:
    # The classpath depends on the pom too (its BOM imports), not only on VERSION.
    return f"{VERSION} {hashlib.sha256((HERE / 'pom.xml').read_bytes()).hexdigest()[:16]}\n"


def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    lib = _lib(cache)
    marker = lib / ".complete"
    stamp = _stamp()
    if marker.exists() and marker.read_text() == stamp:
        return
    log(f"fetching s3proxy {VERSION} and its runtime classpath from Maven Central (once)")
    if lib.exists():
        shutil.rmtree(lib)  # no stale jars of another resolution left on the classpath
    lib.mkdir(parents=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            f"-Ds3proxy.version={VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    if not (lib / f"s3proxy-{VERSION}.jar").exists():
        raise RuntimeError(f"s3proxy-{VERSION}.jar missing from {lib} after mvn copy-dependencies")
    log(f"s3proxy {VERSION}: {sum(1 for _ in lib.glob('*.jar'))} jars in {lib}")
    marker.write_text(stamp)


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    (data / "blobs").mkdir(parents=True, exist_ok=True)
    identity, credential = _keys()
    conf = data / "s3proxy.conf"
    conf.write_text(
        f"s3proxy.endpoint=http://127.0.0.1:{port}\n"
        "s3proxy.authorization=aws-v2-or-v4\n"
        f"s3proxy.identity={identity}\n"
        f"s3proxy.credential={credential}\n"
        f"s3proxy.v4-max-non-chunked-request-size={MAX_SIGNED_BODY}\n"
        "jclouds.provider=filesystem-nio2\n"
        f"jclouds.filesystem.basedir={data / 'blobs'}\n"
    )
    conf.chmod(0o600)


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    java = shutil.which("java") or "java"
    return [
        java,
        "-Xms64m",
        "-Xmx384m",
        f"-Dlogback.configurationFile={HERE / 'logback.xml'}",
        "-cp",
        f"{_lib(cache)}/*",
        "org.gaul.s3proxy.Main",
        "--properties",
        str(data / "s3proxy.conf"),
    ], {}


def ready(port: int) -> bool:
    try:
        import boto3
        from botocore.config import Config

        identity, credential = _keys()
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=identity,
            aws_secret_access_key=credential,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=1,
                read_timeout=2,
                retries={"total_max_attempts": 1},
            ),
        )
        client.list_buckets()
        return True
    except Exception:
        return False
