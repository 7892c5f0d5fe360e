"""A lean HTTP/1.1 keep-alive client for the load generator: one connection, one request at a time.

A benchmark's client should cost a small share of what it measures. httpx costs ≈ 1.3 ms of CPU per
request here (≈ 1 core for 700 requests/s, measured with ``make bench-api``), so the client, on the
same 2 cores as the gateway and the stores, became the limit of the ``/stats`` and ``/health``
scenarios. This client writes a ready-made request and reads the answer by ``Content-Length`` (or
chunked), nothing more: no redirects, no cookies, no TLS, GET only.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit


class HTTPError(Exception):
    """The connection failed or the answer was not HTTP/1.1 as expected."""


@dataclass(frozen=True)
class Response:
    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Connection:
    """One keep-alive connection to ``base_url`` (``http://host:port``), reopened when it closes."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"{base_url}: only http://host:port is supported")
        self.host, self.port = url.hostname, url.port or 80
        self.timeout = timeout
        fixed = {"Host": f"{self.host}:{self.port}", "Accept": "application/json"} | headers
        self._head_tail = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode() + b"\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, params: dict[str, str] | None = None) -> Response:
        target = f"{path}?{urlencode(params)}" if params else path
        request = b"GET " + target.encode() + b" HTTP/1.1\r\n" + self._head_tail
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise HTTPError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, request: bytes) -> Response:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            body = await self._reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            raise ValueError("an answer without Content-Length or chunked encoding")
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, body)

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers expected: the final CRLF
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
