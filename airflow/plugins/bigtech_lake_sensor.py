"""Waiting for a platform run without holding a worker slot: a deferrable sensor and its trigger.

The sensor defers at once; the triggerer (one asyncio loop for every waiting task) polls the
gateway's ``GET /runs/{run_id}`` until the run succeeds or fails, then hands the report back to the
sensor, which fails the task when the run failed or rejected too many rows. The API key is read from
the triggerer's environment, never stored in the trigger's serialized arguments (they go to
Airflow's database).

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
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from bigtech_lake_client import TERMINAL, GatewayError, gateway_configured, rejected_share, run_report


class LakeRunTrigger(BaseTrigger):
    """Polls the gateway every ``poll_interval`` seconds until the run is over or ``timeout`` passes.

    Transient failures (the gateway restarting, a 5xx) are logged and retried; a refusal that asking
    again cannot fix (401, 403, 422) ends the wait with an error event at once."""

    def __init__(self, run_id: str, poll_interval: float = 10.0, timeout: float = 6 * 3600) -> None:
        super().__init__()
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"run_id": self.run_id, "poll_interval": self.poll_interval, "timeout": self.timeout},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout
        last_status = None
        while True:
            try:
                # urllib in a thread: the triggerer's event loop is shared by every waiting task
                report = await asyncio.to_thread(run_report, self.run_id)
            except GatewayError as exc:
                if exc.permanent:
                    yield TriggerEvent({"status": "error", "run_id": self.run_id, "error": str(exc)})
                    return
                self.log.warning("gateway error, retrying: %s", exc)
                report = None
            except OSError as exc:
                self.log.warning("gateway unreachable, retrying: %s", exc)
                report = None
            if report is not None:
                if report["status"] != last_status:
                    self.log.info("run %s is %s", self.run_id, report["status"])
                    last_status = report["status"]
                if report["status"] in TERMINAL:
                    yield TriggerEvent({"status": report["status"], "run_id": self.run_id, "report": report})
                    return
            if time.monotonic() > deadline:
                message = f"run {self.run_id} not finished after {self.timeout:.0f} s (last: {last_status})"
                yield TriggerEvent({"status": "error", "run_id": self.run_id, "error": message})
                return
            await asyncio.sleep(self.poll_interval)


class LakeRunSensor(BaseSensorOperator):
    """Waits, deferred, for a platform run; fails when the run failed or its rejected share
    (rejected rows / raw rows) exceeds ``max_rejected_share``. Returns the run report (XCom)."""

    template_fields = ("run_id", "max_rejected_share")

    def __init__(
        self,
        *,
        run_id: str,
        max_rejected_share: float | str = 0.05,
        poll_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.run_id = run_id
        self.max_rejected_share = max_rejected_share
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> Any:
        gateway_configured()
        self.defer(
            trigger=LakeRunTrigger(self.run_id, self.poll_interval, float(self.timeout)),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def poke(self, context: Any) -> bool:  # not used: the sensor always defers
        return run_report(self.run_id)["status"] in TERMINAL

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] == "error":
            raise RuntimeError(event["error"])  # retried: the gateway may be back next time
        report: dict[str, Any] = event["report"]
        counts = {k: report.get(k) for k in ("raw_rows", "staged_rows", "rejected_rows", "duplicate_rows")}
        self.log.info("run %s %s: %s", self.run_id, report["status"], counts)
        if report["status"] == "failed":
            # a failed run stays failed: retrying the wait cannot change it
            raise AirflowFailException(f"run {self.run_id} failed: {report.get('error')}")
        share, limit = rejected_share(report), float(self.max_rejected_share)
        if share > limit:
            raise AirflowFailException(
                f"run {self.run_id} rejected {share:.2%} of its rows, above the limit of {limit:.2%}"
                f" ({report['rejected_rows']} of {report['raw_rows']}; reasons: "
                f"{report.get('rejected_by_reason')})"
            )
        return report
