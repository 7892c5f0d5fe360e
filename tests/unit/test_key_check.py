"""The gateway's key check parses the Authorization header as FastAPI's HTTPBearer did (a verified
key is served from the cache here, so no server is needed; the MySQL path is tested end to end)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

from lake import auth
from services.gateway.deps import role_of


def test_the_header_is_parsed_as_fastapi_parsed_it():
    token = auth.new_key().token
    stores = SimpleNamespace(key_cache={auth.hash_token(token): ("analyst", time.monotonic() + 60)})

    def role(header: str | None) -> str | None:
        return asyncio.run(role_of(cast(Any, stores), header))

    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER  {token}", f"Bearer {token}\t"):
        assert role(header) == "analyst", header
    refused: list[str | None] = [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {token}",
        f"Bearer{token}",
        "Bearer lk_x",
    ]
    for bad in refused:
        assert role(bad) is None, bad
