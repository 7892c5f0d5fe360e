"""Dependencies as ``Annotated`` aliases, so routes read as plain typed functions.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, which
costs a thread hand-off on every request for functions that never block."""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lake import auth
from lake.settings import Settings
from services.gateway.stores import Stores

# A verified key is trusted for KEY_CACHE_TTL_S without asking MySQL again (one query less per
# request); so a revocation takes effect within that time. Failures are never cached.
KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX = 10_000

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer lk_<id>_<secret>`")


async def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    return stores


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoresDep = Annotated[Stores, Depends(get_stores)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_role(
    stores: StoresDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"}
    )
    if creds is None or creds.scheme.lower() != "bearer":
        raise unauthorized
    token = creds.credentials
    key_id = auth.key_id_of(token)
    if key_id is None:
        raise unauthorized
    digest = auth.hash_token(token)  # the cache never holds a secret
    cached = stores.key_cache.get(digest)
    now = time.monotonic()
    if cached is not None and cached[1] > now:
        return cached[0]
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT key_hash, role FROM api_keys WHERE key_id = %s AND revoked_at IS NULL", (key_id,)
        )
        row = await cur.fetchone()
    if row is None or not hmac.compare_digest(digest, row[0]):
        raise unauthorized
    if len(stores.key_cache) >= KEY_CACHE_MAX:
        stores.key_cache.clear()
    stores.key_cache[digest] = (str(row[1]), now + KEY_CACHE_TTL_S)
    return str(row[1])


async def optional_role(
    stores: StoresDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str | None:
    """The key's role, or None without a valid key (for answers that say more to a key holder)."""
    if creds is None:
        return None
    try:
        return await current_role(stores, creds)
    except HTTPException:
        return None


def require(role: str):  # type: ignore[no-untyped-def]
    async def check(actual: Annotated[str, Depends(current_role)]) -> str:
        if not auth.allows(actual, role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs the {role} role; your key is {actual}"
            )
        return actual

    return check


Viewer = Annotated[str, Depends(require("viewer"))]
Analyst = Annotated[str, Depends(require("analyst"))]
Admin = Annotated[str, Depends(require("admin"))]
