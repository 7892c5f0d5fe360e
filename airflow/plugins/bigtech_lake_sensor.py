"""Waiting for a platform run without holding a worker slot: a deferrable sensor and its trigger.

The sensor defers at once; the triggerer (one asyncio loop for every waiting task) polls the
gateway's ``GET /runs/{run_id}`` until the run succeeds or fails, then hands the report back to the
sensor, which fails the task when the run failed or rejected too many rows. The API key is read from
the triggerer's environment, never stored in the trigger's serialized arguments (they go to
Airflow's database); the deadlines are absolute times, so a triggerer restart does not extend them.

It lives in the plugins folder, not the DAG folder: the triggerer imports a trigger by its class path,
and the plugins folder is on ``sys.path`` in every Airflow process (the DAG folder is not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout
from airflow.triggers.base import BaseTrigger, TriggerEvent
from bigtech_lake_client import (
    NOT_FOUND,
    TERMINAL,
    GatewayError,
    gateway_configured,
    ingest_topic,
    progress_line,
    rejected_share,
    run_report,
)


class LakeRunTrigger(BaseTrigger):
    """Polls the gateway every ``poll_interval`` seconds until the run is over.

    Ends with an error event when: the gateway refuses the key or the request (401, 403, 422: asking
    again cannot help); no service has picked the run up by ``pickup_by`` (epoch seconds: the
    ingestor is down, or consumes another topic prefix); or ``end_at`` passes. Transient failures
    (the gateway restarting, a 5xx) are logged and retried."""

    def __init__(self, run_id: str, poll_interval: float, pickup_by: float, end_at: float) -> None:
        super().__init__()
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.pickup_by = pickup_by
        self.end_at = end_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "poll_interval": self.poll_interval,
                "pickup_by": self.pickup_by,
                "end_at": self.end_at,
            },
        )

    def _error(self, kind: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": "error", "kind": kind, "run_id": self.run_id, "error": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        last_status, last_line = None, None
        while True:
            try:
                # urllib in a thread: the triggerer's event loop is shared by every waiting task
                report = await asyncio.to_thread(run_report, self.run_id)
            except GatewayError as exc:
                if exc.permanent:
                    yield self._error("refused", str(exc))
                    return
                self.log.warning("gateway error, retrying: %s", exc)
                report = None
            except OSError as exc:
                self.log.warning("gateway unreachable, retrying: %s", exc)
                report = None
            now = time.time()
            if report is not None:
                last_status = report["status"]
                # the run's progress in the task's log, one line whenever a count moves
                if report["status"] != NOT_FOUND and (line := progress_line(report)) != last_line:
                    self.log.info("%s", line)
                    last_line = line
                elif report["status"] == NOT_FOUND and last_line is None:
                    self.log.info("run %s not known to the gateway yet", self.run_id)
                    last_line = ""
                if report["status"] in TERMINAL:
                    yield TriggerEvent({"status": report["status"], "run_id": self.run_id, "report": report})
                    return
                if report["status"] in (NOT_FOUND, "requested") and now > self.pickup_by:
                    yield self._error(
                        "not_picked_up",
                        f"no service picked run {self.run_id} up: is the ingestor running, and"
                        f" consuming {ingest_topic()!r} (the same LAKE_KAFKA_TOPIC_PREFIX as Airflow)?",
                    )
                    return
            if now > self.end_at:
                yield self._error("timeout", f"run {self.run_id} not finished in time (last: {last_status})")
                return
            await asyncio.sleep(self.poll_interval)


class LakeRunSensor(BaseSensorOperator):
    """Waits, deferred, for a platform run; fails when the run failed or its rejected share
    (rejected rows / raw rows) exceeds ``max_rejected_share``. Returns the run report (XCom).

    A failed run, a refused key and the overall ``timeout`` fail the task without retries (asking
    again cannot change them); a run nobody picked up within ``pickup_timeout`` is retried."""

    template_fields = ("run_id", "max_rejected_share")

    def __init__(
        self,
        *,
        run_id: str,
        max_rejected_share: float | str = 0.05,
        poll_interval: float = 10.0,
        pickup_timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.run_id = run_id
        self.max_rejected_share = max_rejected_share
        self.poll_interval = poll_interval
        self.pickup_timeout = pickup_timeout

    def execute(self, context: Any) -> Any:
        gateway_configured()
        now = time.time()
        self.defer(
            trigger=LakeRunTrigger(
                self.run_id, self.poll_interval, now + self.pickup_timeout, now + float(self.timeout)
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def poke(self, context: Any) -> bool:  # not used: the sensor always defers
        return run_report(self.run_id)["status"] in TERMINAL

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] == "error":
            if event["kind"] == "timeout":
                raise AirflowSensorTimeout(event["error"])
            if event["kind"] == "refused":
                raise AirflowFailException(event["error"])
            raise RuntimeError(event["error"])  # not picked up yet: retried
        report: dict[str, Any] = event["report"]
        self.log.info("%s", progress_line(report))
        if report["status"] == "failed":
            # retrying the wait cannot change a failed run. Two ways on (docs/api.md, "Recovery"):
            # redrive its dead letters, then clear this DAG run: the reopened run is no longer
            # failed, so plan_run picks it again and this sensor waits for it; or re-run the date,
            # which requests a new run (bigtech_lake_client.run_id_to_request)
            raise AirflowFailException(
                f"run {self.run_id} failed: {report.get('error')} — to finish it, redrive its dead"
                f" letters (lake dlq redrive --run {self.run_id}) and clear this DAG run"
            )
        share, limit = rejected_share(report), float(self.max_rejected_share)
        if share > limit:
            raise AirflowFailException(
                f"run {self.run_id} rejected {share:.2%} of its rows, above the limit of {limit:.2%}"
                f" ({report['rejected_rows']} of {report['raw_rows']}; reasons: "
                f"{report.get('rejected_by_reason')})"
            )
        return report
