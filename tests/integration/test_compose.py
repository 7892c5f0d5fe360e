"""docker-compose.yml cannot run here (no Docker engine), so it is validated: Compose must accept it
(Debian's docker-compose parses and interpolates without an engine), and what it wires must match
what the code reads: variable names, service host names, ports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from lake.settings import OTHER_ENV, settings_env

ROOT = Path(__file__).resolve().parents[2]
LAKE_SERVICES = ("ingestor", "stager", "curator", "gateway", "bootstrap")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: `make test` installs it (Debian package docker-compose)"
    done = subprocess.run(
        [exe, "--env-file", ".env.example", "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_compose_accepts_the_file_and_it_has_the_whole_topology(compose: dict[str, Any]):
    services = compose["services"]
    wanted = {"kafka", "mysql", "mongo", "s3", "kafka-ui", *LAKE_SERVICES, "airflow-scheduler"}
    assert wanted <= set(services)
    for name in ("kafka", "mysql", "mongo", "s3", "gateway"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["kafka"]["image"].startswith("apache/kafka:4")
    assert services["mysql"]["image"].startswith("mysql:8")
    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["kafka-ui"]["image"].startswith("kafbat/kafka-ui")
    for name in ("ingestor", "stager", "curator", "gateway"):
        dockerfile = services[name]["build"]["dockerfile"]
        assert (ROOT / dockerfile).is_file(), f"{name}: {dockerfile} does not exist"


def test_every_lake_variable_in_compose_and_the_example_env_is_one_the_code_reads(compose: dict[str, Any]):
    known = set(settings_env()) | set(OTHER_ENV)
    for name, service in compose["services"].items():
        unknown = {k for k in env_of(service) if k.startswith("LAKE_")} - known
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
    example = re.findall(r"^#?\s*(LAKE_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    assert set(example) - known == set()
    assert set(settings_env()) <= set(example), "the example env file misses settings"


def test_the_services_reach_the_stores_by_their_compose_names_and_ports(compose: dict[str, Any]):
    services = compose["services"]
    for name in LAKE_SERVICES:
        env = env_of(services[name])
        host, port = env["LAKE_KAFKA_BOOTSTRAP"].split(":")
        kafka_env = services["kafka"]["environment"]
        assert host == "kafka" and f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["LAKE_MYSQL_HOST"] == "mysql" and env["LAKE_MYSQL_PORT"] == "3306"
        mongo = urlparse(env["LAKE_MONGO_URL"])
        assert (mongo.hostname, mongo.port) == ("mongo", 27017)
        s3 = urlparse(env["LAKE_S3_ENDPOINT"])
        assert s3.hostname == "s3" and any(p["target"] == s3.port for p in services["s3"]["ports"])
        assert env["LAKE_MYSQL_USER"] == services["mysql"]["environment"]["MYSQL_USER"]
        assert env["LAKE_MYSQL_PASSWORD"] == services["mysql"]["environment"]["MYSQL_PASSWORD"]
        assert env["LAKE_MYSQL_DATABASE"] == services["mysql"]["environment"]["MYSQL_DATABASE"]
        assert env["LAKE_S3_ACCESS_KEY"] == services["s3"]["environment"]["S3PROXY_IDENTITY"]
        assert env["LAKE_S3_SECRET_KEY"] == services["s3"]["environment"]["S3PROXY_CREDENTIAL"]


def test_published_ports_match_the_local_defaults_so_the_cli_works_against_either(compose: dict[str, Any]):
    """On the host, `lake ingest` and the tests use the default settings: the compose stack publishes
    each store on the same port the local stack uses."""
    defaults = {k: v[0] for k, v in settings_env().items()}
    published = {
        name: {int(p["published"]): int(p["target"]) for p in svc.get("ports", [])}
        for name, svc in compose["services"].items()
    }
    assert int(defaults["LAKE_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1]) in published["kafka"]
    assert int(defaults["LAKE_MYSQL_PORT"]) in published["mysql"]
    assert urlparse(defaults["LAKE_MONGO_URL"]).port in published["mongo"]
    assert urlparse(defaults["LAKE_S3_ENDPOINT"]).port in published["s3"]
    gateway_env = env_of(compose["services"]["gateway"])
    assert published["gateway"][int(defaults["LAKE_GATEWAY_PORT"])] == int(gateway_env["LAKE_GATEWAY_PORT"])
    assert gateway_env["LAKE_GATEWAY_HOST"] == "0.0.0.0"  # noqa: S104 - inside its container


def test_mysql_8_is_configured_for_what_the_stager_needs(compose: dict[str, Any]):
    command = " ".join(compose["services"]["mysql"].get("command", []))
    assert "--local-infile=1" in command or "--local_infile=1" in command
    assert "utf8mb4_unicode_ci" in command


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, "volume" or "bind"), from Compose's long or short (v1) volume syntax."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out[v["target"]] = (v.get("source", ""), v["type"])
        else:
            source, target = v.split(":")[:2]
            out[target] = (source, "bind" if source.startswith(("/", ".")) else "volume")
    return out


AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def test_airflow_runs_all_four_components_on_an_image_with_the_dags_pinned_providers(compose: dict[str, Any]):
    services = compose["services"]
    assert {*AIRFLOW, "airflow-init", "airflow-db"} <= set(services)
    requirements = (ROOT / "airflow" / "requirements.txt").read_text()
    version = re.search(r"^apache-airflow==([\d.]+)$", requirements, re.M)
    dockerfile = (ROOT / "airflow" / "Dockerfile").read_text()
    assert (
        version and f"apache/airflow:{version.group(1)}-" in dockerfile
    )  # base image = local venv's Airflow
    assert "COPY airflow/requirements.txt" in dockerfile
    for name in (*AIRFLOW, "airflow-init"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "airflow/Dockerfile"
        assert {"/opt/airflow/dags", "/opt/airflow/plugins"} <= set(mounts(svc))
        env = env_of(svc)
        assert json.loads(env["AIRFLOW_CONN_LAKE_KAFKA"])["extra"]["bootstrap.servers"] == "kafka:9092"
        assert urlparse(env["LAKE_GATEWAY_URL"]).netloc == "gateway:8000"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")  # its own database
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"]  # shared by the components
        # the DAG publishes where the ingestor consumes
        assert env["LAKE_KAFKA_TOPIC_PREFIX"] == env_of(services["ingestor"])["LAKE_KAFKA_TOPIC_PREFIX"]
    for name in AIRFLOW:
        assert "healthcheck" in services[name], name
    assert services["airflow-triggerer"]["depends_on"]["gateway"]["condition"] == "service_healthy"
    # the key Airflow sends is the one bootstrap registers (before the gateway and Airflow start)
    bootstrap = services["bootstrap"]
    assert "lake keys import airflow --role analyst --from-env LAKE_GATEWAY_API_KEY" in " ".join(
        bootstrap["command"]
    )
    key_env = env_of(services["airflow-triggerer"])["LAKE_GATEWAY_API_KEY"]
    assert env_of(bootstrap)["LAKE_GATEWAY_API_KEY"] == key_env


def test_workers_have_replicas_healthchecks_and_every_dependency_waits_on_a_condition(
    compose: dict[str, Any],
):
    services = compose["services"]
    assert services["stager"]["deploy"]["replicas"] == 2
    assert services["curator"]["deploy"]["replicas"] == 2
    for name, svc in services.items():
        if name not in ("bootstrap", "airflow-init"):  # one-shot jobs
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dependency, how in (svc.get("depends_on") or {}).items():
            assert how.get("condition") in ("service_healthy", "service_completed_successfully"), (
                name,
                dependency,
            )


def test_every_store_keeps_its_data_in_a_named_volume(compose: dict[str, Any]):
    services, volumes = compose["services"], set(compose["volumes"])
    data_dirs = {
        "kafka": "/var/lib/kafka/data",
        "mysql": "/var/lib/mysql",
        "mongo": "/data/db",
        "s3": services["s3"]["environment"]["JCLOUDS_FILESYSTEM_BASEDIR"],  # s3proxy's filesystem backend
        "airflow-db": "/var/lib/postgresql/data",
    }
    for name, path in data_dirs.items():
        source, kind = mounts(services[name])[path]
        assert kind == "volume" and source in volumes, name
    assert services["s3"]["environment"]["JCLOUDS_PROVIDER"] == "filesystem-nio2"
