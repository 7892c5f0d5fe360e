"""Apache Kafka 4.x in KRaft mode (one node, broker + controller), run from Maven Central's jars.

The classpath is ``kafka_2.13`` plus the slf4j -> log4j2 binding (see ``kafka/pom.xml``); no
tarball is needed. ``kafka.Kafka`` runs in the foreground as the java process itself.
"""

from __future__ import annotations

import base64
import contextlib
import pathlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable

NAME = "kafka"
VERSION = "4.1.1"
HERE = pathlib.Path(__file__).resolve().parent / "kafka"
LOG_CONFIG = HERE / "log4j2.properties"


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
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(HERE / "pom.xml"),
            f"-Dkafka.version={VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    if not any(lib.glob(f"kafka_2.13-{VERSION}.jar")):
        raise RuntimeError(f"mvn finished but {lib} has no kafka_2.13-{VERSION}.jar")
    marker.write_text(VERSION + "\n")
    log(f"Kafka {VERSION}: {sum(1 for _ in lib.glob('*.jar'))} jars in {lib}")


def _properties(data: pathlib.Path, port: int) -> str:
    return f"""# written by infra/kafka_component.py; rewritten on every start
process.roles=broker,controller
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
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=168
"""


def _jvm(cache: pathlib.Path) -> list[str]:
    return [
        _java(),
        "-Xmx512m",
        "-Xms256m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG_CONFIG}",
        "-cp",
        f"{_lib(cache)}/*",
    ]


def _cluster_id(data: pathlib.Path) -> str:
    path = data / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    # Like org.apache.kafka.common.Uuid.randomUuid(): 16 random bytes, base64url without padding,
    # never starting with '-' (the storage tool would read it as an option).
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            break
    path.write_text(cid + "\n")
    return cid


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    props.write_text(_properties(data, port))
    cid = _cluster_id(data)
    if (data / "logs" / "meta.properties").exists():
        return
    # No --standalone: the quorum is given statically by controller.quorum.voters.
    result = subprocess.run(
        [
            *_jvm(cache),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cid,
            "-c",
            str(props),
            "--ignore-formatted",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kafka storage format failed ({result.returncode}):\n{result.stdout[-3000:]}")


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    return [*_jvm(cache), "kafka.Kafka", str(data / "server.properties")], {}


def ready(port: int) -> bool:
    """Metadata + OffsetFetch round trips through kafka-python (~2 s max); False, never an exception."""
    try:  # cheap check first: nothing listening means no need to start a client
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            pass
    except OSError:
        return False
    client = None
    try:
        from kafka import KafkaAdminClient

        # kafka-python 3.x bootstraps inside __init__ (default bootstrap_timeout_ms=30000) and, when
        # that fails, leaves its IO thread running; construct in two steps so it can always be stopped.
        client = KafkaAdminClient.__new__(KafkaAdminClient)
        client.__init__(
            bootstrap_servers=f"127.0.0.1:{port}",
            client_id="lake-ready",
            request_timeout_ms=2000,
            bootstrap_timeout_ms=2000,
            reconnect_backoff_max_ms=500,
        )
        client.list_topics()
        # Metadata is served before the group coordinator has loaded __consumer_offsets; until then
        # OffsetFetch fails with CoordinatorLoadInProgressError (admin calls don't retry it). An
        # offset fetch for a group that does not exist is empty once the coordinator is up (and the
        # FindCoordinator on a new cluster creates __consumer_offsets ahead of the first consumer).
        client.list_group_offsets("lake-ready-probe")
        return True
    except Exception:
        return False
    finally:
        if client is not None:
            _close(client)


def _close(client: object) -> None:
    with contextlib.suppress(Exception):
        if getattr(client, "_closed", True) is False:
            client.close()  # type: ignore[attr-defined]
            return
        # __init__ failed half-way: close the network client and stop its IO thread ourselves.
        for attr, method in (("_client", "close"), ("_net", "stop")):
            owner = getattr(client, attr, None)
            if owner is not None:
                getattr(owner, method)()
