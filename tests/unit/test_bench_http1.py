"""The benchmark's lean HTTP/1.1 client reads what servers send: Content-Length and chunked bodies,
keep-alive, a server that closes, and refuses what it cannot read with a clear error."""

from __future__ import annotations

import asyncio

import pytest

from bench import http1


async def serve(answers: list[bytes]) -> tuple[asyncio.Server, list[bytes]]:
    """A server answering each request with the next of ``answers``; records the request heads."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while answers:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), heads


def test_bodies_by_length_and_chunks_keep_alive_and_a_closed_connection_is_reopened():
    async def main() -> None:
        server, heads = await serve(
            [
                b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":1}',
                b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain",
            ]
        )
        port = server.sockets[0].getsockname()[1]
        conn = http1.Connection(f"http://127.0.0.1:{port}", {"Authorization": "Bearer k"})
        first = await conn.get("/staging", {"company": "AT&T", "limit": "5"})
        assert (first.status_code, first.body) == (200, b'{"a":1}')
        second = await conn.get("/x")
        assert (second.status_code, second.body) == (404, b"abcde")
        third = await conn.get("/y")
        assert third.text == "ok"
        fourth = await conn.get("/z")  # the server closed after the third: a new connection
        assert fourth.body == b"again"
        await conn.close()
        server.close()
        await server.wait_closed()
        assert heads[0].startswith(b"GET /staging?company=AT%26T&limit=5 HTTP/1.1\r\n")
        assert b"Authorization: Bearer k\r\n" in heads[0] and b"Host: 127.0.0.1:" in heads[0]

    asyncio.run(main())


def test_an_answer_it_cannot_read_or_a_server_that_is_gone_is_a_clear_error():
    async def main() -> None:
        server, _ = await serve([b"HTTP/1.1 200 OK\r\n\r\nno length"])
        port = server.sockets[0].getsockname()[1]
        conn = http1.Connection(f"http://127.0.0.1:{port}", {})
        with pytest.raises(http1.HTTPError, match="without Content-Length"):
            await conn.get("/")
        server.close()
        await server.wait_closed()
        with pytest.raises(http1.HTTPError, match=r"ConnectionRefusedError|OSError"):
            await conn.get("/")

    asyncio.run(main())
    with pytest.raises(ValueError, match="only http"):
        http1.Connection("https://example.org", {})
