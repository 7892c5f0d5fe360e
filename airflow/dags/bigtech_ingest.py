"""Airflow kicks off ingestion runs and watches them; it moves no data itself.

Trigger with a conf such as {"source": "generated", "rows": 50000, "seed": 42} or
{"source": "kaggle"}; the run's counts end up in the task log and in the gateway's /runs/{id}.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task
from bigtech_lake_client import TERMINAL, run_report, start_run

DEFAULT_SOURCE = {"source": "generated", "rows": 50_000, "seed": 42}


@dag(
    dag_id="bigtech_ingest",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["bigtech-lake"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
)
def bigtech_ingest() -> None:
    @task
    def request_run() -> str:
        conf = get_current_context()["dag_run"].conf or {}
        return start_run({**DEFAULT_SOURCE, **conf} if not conf.get("source") else dict(conf))

    @task.sensor(poke_interval=10, timeout=6 * 3600, mode="reschedule")
    def wait_for_run(run_id: str) -> Any:
        from airflow.sdk import PokeReturnValue

        report = run_report(run_id)
        if report["status"] == "failed":
            raise RuntimeError(f"run {run_id} failed: {report.get('error')}")
        return PokeReturnValue(is_done=report["status"] in TERMINAL, xcom_value=report)

    wait_for_run(request_run())


bigtech_ingest()
