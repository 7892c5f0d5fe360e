"""The main mix's routes served without FastAPI's per-request machinery: ``GET /staging``,
``GET /curated`` and ``GET /curated/{twitter_id}``.

FastAPI costs ≈ 235 µs per request on these routes even with one dependency for the key and one
model for the filters (routing, dependency solving, the request and response objects:
docs/benchmarks.md), as much as a page's own work in the gateway. ``HotRoutes`` is a plain ASGI
middleware in front of the app that answers these three routes itself when the request is in order:
the key's role allows the route (``deps.role_of``, the same cached check) and the parameters parse
(``query.parse_tweet_query``, the same model). Then it calls the same function as the FastAPI route
(``staging_page``, ``curated_page``, ``curated_detail``), so a page is the same bytes either way.

Anything else goes to the app unchanged: another route or method, a missing or weak key, an invalid
parameter — so every refusal is the framework's own answer, with one code path for errors. An error
raised while answering (a store down, a timeout, a 404) is answered by the app's own exception
handlers (``errors.install``), looked up by class as Starlette does. The FastAPI routes stay: they
document the API (OpenAPI), answer HEAD, and serve every request when ``hot_routes=False``
(``create_app``); ``tests/e2e/test_list_queries.py`` checks both give the same answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from pydantic import TypeAdapter
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from lake import auth
from services.gateway.answers import MEDIA_TYPE
from services.gateway.deps import role_of
from services.gateway.query import parse_tweet_query, twitter_id_path
from services.gateway.read.tweets import curated_detail, curated_page, staging_page
from services.gateway.stores import Stores

# A request read and checked: the call that makes its answer's bytes.
Answer = Callable[[], Awaitable[bytes]]
# Reads a request (stores, route path, query parameters); raises when a parameter is invalid.
Reader = Callable[[Stores, str, QueryParams], Answer]
QUERY_BOOL = TypeAdapter(bool)  # how FastAPI reads a bool query parameter ("true", "1", "off"…)
CURATED_PREFIX = "/curated/"


def _flag(params: QueryParams, name: str, default: bool) -> bool:
    value = params.get(name)
    return default if value is None else QUERY_BOOL.validate_python(value)


def _staging(stores: Stores, _: str, params: QueryParams) -> Answer:
    query = parse_tweet_query(params)
    return lambda: staging_page(stores, query)


def _curated(stores: Stores, _: str, params: QueryParams) -> Answer:
    query = parse_tweet_query(params)
    include_tokens = _flag(params, "include_tokens", False)
    return lambda: curated_page(stores, query, include_tokens)


def _curated_one(stores: Stores, path: str, params: QueryParams) -> Answer:
    tid = twitter_id_path(path[len(CURATED_PREFIX) :])
    include_tokens = _flag(params, "include_tokens", True)
    return lambda: curated_detail(stores, tid, include_tokens)


# route template -> (the role it needs, how its requests are read)
ROUTES: dict[str, tuple[str, Reader]] = {
    "/staging": ("analyst", _staging),
    "/curated": ("viewer", _curated),
    "/curated/{twitter_id}": ("viewer", _curated_one),
}


@dataclass(frozen=True)
class RouteLabel:
    path: str


LABELS = {template: RouteLabel(template) for template in ROUTES}


def _template(path: str) -> str | None:
    if path in ("/staging", "/curated"):
        return path
    tail = path[len(CURATED_PREFIX) :]
    if path.startswith(CURATED_PREFIX) and tail and "/" not in tail:
        return "/curated/{twitter_id}"
    return None


def _route_path(scope: Scope) -> str:
    """The path the app's router matches (``scope["path"]`` without ``root_path``)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class HotRoutes:
    """See the module's docstring. ``gateway`` is the FastAPI app: its state holds the stores (from
    its lifespan), its exception handlers answer the errors."""

    def __init__(self, app: ASGIApp, gateway: FastAPI) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        template = _template(path)
        if template is None:
            await self.app(scope, receive, send)
            return
        needed, read = ROUTES[template]
        stores: Stores = self.gateway.state.stores
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            role = await role_of(stores, header)
            allowed = role is not None and auth.allows(role, needed)
            answer = read(stores, path, QueryParams(scope["query_string"])) if allowed else None
        except Exception:  # an invalid parameter, or the keys' store down: the app's own answer
            answer = None
        if answer is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = LABELS[template]  # what the metrics read of the route the router would set
        try:
            body = await answer()
        except Exception as exc:
            await self._error(scope, receive, send, exc)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode("latin-1")),
                    (b"content-type", MEDIA_TYPE.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _error(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """Answer ``exc`` with the app's handler for its class (Starlette's lookup)."""
        handlers: dict[Any, Any] = self.gateway.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                response = await handlers[cls](Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        raise exc
