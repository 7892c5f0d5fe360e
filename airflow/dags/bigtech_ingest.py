"""Kicks off one ingestion run of the BigTech tweets lake a day and reports its outcome.

Airflow moves no data: the platform's services do. The DAG

1. ``plan_run`` — derives the run id from the logical date (one platform run per date: retries and
   re-runs of a date publish the same id, which the ingestor ignores once the run is ingested; a
   date whose run failed gets a new one, ``…-r2``, unless the failed run was redriven meanwhile:
   then it is running again and reused) and the source from the params;
2. ``publish_ingest_requested`` — publishes ``ingest.requested`` to Kafka with the Kafka provider
   (connection ``lake_kafka``, e.g. ``AIRFLOW_CONN_LAKE_KAFKA='{"conn_type": "kafka", "extra":
   {"bootstrap.servers": "kafka:9092"}}'``; topic prefix ``LAKE_KAFKA_TOPIC_PREFIX``);
3. ``wait_for_run`` — waits in the triggerer (no worker slot held) for the run to finish, through
   the gateway (``LAKE_GATEWAY_URL``, ``LAKE_GATEWAY_API_KEY`` of an analyst key), and fails when
   the run failed or rejected more than ``max_rejected_share`` of its rows.

It runs daily; ``LAKE_AIRFLOW_SCHEDULE`` (in the DAG processor's environment) sets another cron
or preset, or ``none`` for triggered runs only. Trigger by hand with a conf, e.g.
``{"source": "generated", "rows": 50000, "seed": 42}`` or ``{"source": "path", "path":
"/data/bigtech"}``; the run's report is the last task's XCom and is served by the gateway at
``/runs/{run_id}``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.sdk import Param, dag, task
from bigtech_lake_client import (
    ingest_messages,
    ingest_topic,
    run_id_for,
    run_id_to_request,
    source_from_params,
)
from bigtech_lake_sensor import LakeRunSensor

DAG_ID = "bigtech_ingest"
KAFKA_CONNECTION = "lake_kafka"
SCHEDULE = os.environ.get("LAKE_AIRFLOW_SCHEDULE", "@daily")


@dag(
    dag_id=DAG_ID,
    schedule=None if SCHEDULE.lower() == "none" else SCHEDULE,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=8),
    render_template_as_native_obj=True,
    tags=["bigtech-lake"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
    params={
        "source": Param(
            "kaggle", enum=["kaggle", "generated", "path"], description="where the tweets come from"
        ),
        "version": Param(None, type=["null", "integer"], minimum=1, description="Kaggle dataset version"),
        "rows": Param(50_000, type="integer", minimum=1, description="rows of a generated dataset"),
        "seed": Param(42, type="integer", description="seed of a generated dataset"),
        "path": Param(None, type=["null", "string"], description="file, folder or s3:// URI (source path)"),
        "max_rejected_share": Param(
            0.05, type="number", minimum=0, maximum=1, description="fail above this share of rejected rows"
        ),
    },
)
def bigtech_ingest() -> None:
    @task(multiple_outputs=True)
    def plan_run(**context: Any) -> dict[str, Any]:
        source = source_from_params(dict(context["params"]))
        base = run_id_for(DAG_ID, context.get("logical_date"), context["dag_run"].run_id)
        return {"run_id": run_id_to_request(base), "source": source}

    plan = plan_run()
    publish = ProduceToTopicOperator(
        task_id="publish_ingest_requested",
        kafka_config_id=KAFKA_CONNECTION,
        topic=ingest_topic(),
        producer_function=ingest_messages,
        producer_function_kwargs={"run_id": plan["run_id"], "source": plan["source"]},
        delivery_callback="bigtech_lake_client.raise_on_delivery_error",
        synchronous=True,
    )
    wait = LakeRunSensor(
        task_id="wait_for_run",
        run_id=plan["run_id"],
        max_rejected_share="{{ params.max_rejected_share }}",
        poll_interval=10,
        timeout=6 * 3600,
    )
    plan >> publish >> wait


bigtech_ingest()
