"""Run the gateway: ``python -m services.gateway`` (host, port and number of worker processes from
LAKE_GATEWAY_HOST, _PORT and _WORKERS).

One process runs one event loop, so it uses at most one core. With ``LAKE_GATEWAY_WORKERS`` > 1,
uvicorn starts that many processes on the same socket (and restarts one that dies); Prometheus
metrics are then kept in files of a shared folder (``PROMETHEUS_MULTIPROC_DIR``, a fresh temporary
folder unless set) and ``/metrics`` sums them over the processes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from lake.observability import setup_logging
from lake.settings import get_settings
from services.gateway.app import create_app


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this factory in each)."""
    setup_logging("gateway")
    return create_app(get_settings())


def main() -> None:
    settings = get_settings()
    setup_logging("gateway")
    common = {
        "host": settings.gateway.host,
        "port": settings.gateway.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
    }
    if settings.gateway.workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    made = folder is None
    if folder is None:
        folder = tempfile.mkdtemp(prefix="lake-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # inherited by the workers
    else:  # files of an earlier run would be summed in: start empty
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    try:
        uvicorn.run(
            "services.gateway.__main__:worker_app",
            factory=True,
            workers=settings.gateway.workers,
            **common,  # type: ignore[arg-type]
        )
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
