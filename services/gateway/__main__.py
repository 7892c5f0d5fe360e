"""Run the gateway: ``python -m services.gateway`` (host and port from LAKE_GATEWAY_HOST / _PORT)."""

from __future__ import annotations

import uvicorn

from lake.observability import setup_logging
from lake.settings import get_settings
from services.gateway.app import create_app


def main() -> None:
    settings = get_settings()
    setup_logging("gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.gateway.host,
        port=settings.gateway.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
