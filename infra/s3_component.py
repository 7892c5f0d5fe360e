"""An S3 endpoint that keeps its objects on disk: s3proxy (Maven Central) with jclouds' filesystem-nio2
provider, path-style, AWS v2/v4 signatures with the development key pair from the environment."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable

NAME = "s3"
VERSION = "3.0.0"
HERE = pathlib.Path(__file__).resolve().parent / "s3proxy"


def _lib(cache: pathlib.Path) -> pathlib.Path:
    return cache / f"s3proxy-{VERSION}" / "lib"


def _keys() -> tuple[str, str]:
    return (os.environ.get("LAKE_S3_ACCESS_KEY", "lake-dev"), os.environ.get("LAKE_S3_SECRET_KEY", "lake-dev-secret"))


def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    lib = _lib(cache)
    marker = lib / ".complete"
    if marker.exists():
        return
    log(f"fetching s3proxy {VERSION} from Maven Central (once)")
    lib.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), f"-Ds3proxy.version={VERSION}",
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={lib}"],
        check=True,
    )
    marker.write_text(VERSION + "\n")


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    (data / "blobs").mkdir(parents=True, exist_ok=True)
    identity, credential = _keys()
    conf = data / "s3proxy.conf"
    conf.write_text(
        f"s3proxy.endpoint=http://127.0.0.1:{port}\n"
        "s3proxy.authorization=aws-v2-or-v4\n"
        f"s3proxy.identity={identity}\n"
        f"s3proxy.credential={credential}\n"
        "jclouds.provider=filesystem-nio2\n"
        f"jclouds.filesystem.basedir={data / 'blobs'}\n"
    )
    conf.chmod(0o600)


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    java = shutil.which("java") or "java"
    return [
        java, "-Xms64m", "-Xmx384m", f"-Dlogback.configurationFile={HERE / 'logback.xml'}",
        "-cp", f"{_lib(cache)}/*", "org.gaul.s3proxy.Main", "--properties", str(data / "s3proxy.conf"),
    ], {}


def ready(port: int) -> bool:
    try:
        import boto3
        from botocore.config import Config

        identity, credential = _keys()
        client = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id=identity,
            aws_secret_access_key=credential,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=1, read_timeout=2,
                          retries={"max_attempts": 1}),
        )
        client.list_buckets()
        return True
    except Exception:
        return False
