"""Apache Kafka 4.x in KRaft mode (one node, broker + controller), run from Maven Central's jars."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import uuid
from collections.abc import Callable

NAME = "kafka"
VERSION = "4.1.1"
HERE = pathlib.Path(__file__).resolve().parent / "kafka"


def _lib(cache: pathlib.Path) -> pathlib.Path:
    return cache / f"kafka-{VERSION}" / "lib"


def _java() -> str:
    return shutil.which("java") or "java"


def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    lib = _lib(cache)
    marker = lib / ".complete"
    if marker.exists():
        return
    log(f"fetching the Kafka {VERSION} broker classpath from Maven Central (once)")
    lib.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), f"-Dkafka.version={VERSION}",
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={lib}"],
        check=True,
    )
    marker.write_text(VERSION + "\n")


def _properties(data: pathlib.Path, port: int) -> str:
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{port + 1}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data / "logs"}
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=168
"""


def _jvm(cache: pathlib.Path) -> list[str]:
    return [
        _java(), "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}", "-cp", f"{_lib(cache)}/*",
    ]


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    props.write_text(_properties(data, port))
    cluster = data / "cluster.id"
    if not cluster.exists():
        # Kafka cluster ids are 16 random bytes, base64url without padding (22 characters).
        import base64

        cluster.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
    if (data / "logs" / "meta.properties").exists():
        return
    subprocess.run(
        [*_jvm(cache), "kafka.tools.StorageTool", "format", "-t", cluster.read_text().strip(), "-c", str(props),
         "--ignore-formatted"],
        check=True, stdout=subprocess.DEVNULL,
    )


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    return [*_jvm(cache), "kafka.Kafka", str(data / "server.properties")], {}


def ready(port: int) -> bool:
    try:
        from kafka import KafkaAdminClient

        client = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=2000,
                                  client_id="lake-ready")
        try:
            client.list_topics()
            return True
        finally:
            client.close()
    except Exception:
        return False
