"""The gateway benchmark's wrk driver: the Lua script's output read back, Lua literals, the summary's
ratios, and (when wrk is installed) ``bench/api.lua`` run by wrk against a small local server:
cursors followed on the same connection with the same filters, errors kept, answers after the
window awaited, a request never answered reported as such."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from bench import wrk
from bench.api import INGEST, Ingestion, summary
from bench.measure import Recorder, ScenarioResult, merged, result_of


def test_the_scripts_output_is_read_back():
    out = wrk.parse_output(
        "W 0 2 0 5 0\n"
        "R 0 10.000001 10.250000 200\n"
        "R 1 10.1 10.2 422\n"
        "R 1 10.3 10.4 0\n"
        "P 0 11.5\n"
        'E 1 422 {"detail": "no"}\n'
        "E 1 422 a later thread's\n"
    )
    assert out.records == [(0, 10.000001, 10.25, 200), (1, 10.1, 10.2, 422), (1, 10.3, 10.4, 0)]
    assert out.unanswered == [(0, 11.5)]
    assert out.first_errors == {1: '422 {"detail": "no"}'}
    assert out.socket_errors == {"connect": 0, "read": 2, "write": 0, "status": 5, "timeout": 0}
    with pytest.raises(ValueError, match="unexpected line"):
        wrk.parse_output("Running 10s test @ http://x\n")


def test_lua_literals():
    assert wrk.lua({"a": [1, 2.5, True], "b": 'AT%26T "q"\\\r\né'}) == (
        '{a = {1, 2.5, true}, b = "AT%26T \\034q\\034\\092\\013\\010\\195\\169"}'
    )
    with pytest.raises(TypeError):
        wrk.lua(None)


def result(name: str, rate: float, p99: float, endpoints: list[str]) -> ScenarioResult:
    figures = {"requests": 10, "requests_per_s": rate, "p50_ms": p99 / 2, "p99_ms": p99, "errors": 0}
    return ScenarioResult(name, dict.fromkeys(endpoints, figures), figures, {}, {"bench client": 0.1})


def test_the_summary_keys_endpoints_by_scenario_and_gives_the_ratios():
    args = argparse.Namespace(concurrency=64, seconds=15.0, rounds=1)
    results = [
        result("mix", 400.0, 600.0, ["/staging", "/curated/{twitter_id}"]),
        result("staging", 300.0, 200.0, ["/staging"]),
        result("curated", 30.0, 2000.0, ["/curated"]),
        result("stores", 800.0, 300.0, ["/staging", "/curated/{twitter_id}"]),
    ]
    s = summary({"raw_rows": 1000, "staged_rows": 990}, args, results, None, {})
    assert (s["requests_per_s"], s["p99_ms"], s["stores_requests_per_s"], s["stats_p99_ms"]) == (
        400.0,
        600.0,
        800.0,
        None,
    )
    assert s["curated_list_share_of_staging"] == 0.1
    assert s["mix_share_of_stores"] == 0.5
    assert s["mix_p99_vs_stores"] == 2.0
    assert set(s["endpoints"]) == {
        "mix /staging",
        "mix /curated/{twitter_id}",
        "staging /staging",
        "curated /curated",
        "stores /staging",
        "stores /curated/{twitter_id}",
    }
    assert s["endpoints"]["staging /staging"]["scenario"] == "staging"
    assert s["endpoints"]["staging /staging"]["endpoint"] == "/staging"
    alone = summary({"raw_rows": 1, "staged_rows": 1}, args, results[:1], None, {})
    assert alone["mix_share_of_stores"] is None
    assert s["mix_during_ingest"]["ingestion"] is None
    assert s["mix_during_ingest"]["requests_vs_idle_mix"] is None


def test_the_summary_sets_the_mix_during_an_ingestion_beside_the_idle_mix_and_the_idle_run():
    args = argparse.Namespace(concurrency=64, seconds=15.0, rounds=1)
    results = [
        result("mix", 400.0, 600.0, ["/staging", "/curated/{twitter_id}"]),
        result(INGEST, 300.0, 900.0, ["/staging", "/curated/{twitter_id}"]),
    ]
    runs = {"bench-api-idle-1": {"raw_rows": 113}, "bench-api-loaded-1": {"raw_rows": 113}}
    s = summary({"raw_rows": 1000, "staged_rows": 990}, args, results, Ingestion(113, 40.0, 50.0, runs), {})
    assert s["mix_during_ingest"] == {
        "requests_per_s": 300.0,
        "p99_ms": 900.0,
        "errors": 0,
        "requests_vs_idle_mix": 0.75,
        "p99_vs_idle_mix": 1.5,
        "ingestion": {
            "rows": 113,
            "seconds_idle": 40.0,
            "seconds_under_mix": 50.0,
            "duration_vs_idle": 1.25,
            "runs": runs,
        },
    }
    assert {"mix-during-ingest /staging", "mix /staging"} <= set(s["endpoints"])


class Server:
    """Pages of 3 (``/p``: next_cursor c1, then c2, then null), ``/bad`` (422), ``/hang`` (never
    answered, the first time), ``/drop`` (the connection closed, the first time). Records each
    request's target by connection."""

    def __init__(self) -> None:
        self.targets: dict[int, list[str]] = {}
        self.once: set[str] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("peername")[1]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                self.targets.setdefault(conn, []).append(target)
                path, query = urlsplit(target).path, dict(parse_qsl(urlsplit(target).query))
                if path in ("/hang", "/drop") and path not in self.once:
                    self.once.add(path)
                    if path == "/hang":
                        await asyncio.sleep(30)
                    break
                status, body = "200 OK", b"{}"
                if path == "/p":
                    after = {None: '"c1"', "c1": '"c2"', "c2": "null"}[query.get("cursor")]
                    body = b'{"items": [1, 2, 3], "next_cursor": ' + after.encode() + b"}"
                elif path == "/bad":
                    status, body = "422 Unprocessable Entity", b'{"detail": "no"}'
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_runs_the_script_follows_cursors_per_connection_and_awaits_the_last_answers(server):
    picks = [
        wrk.Pick(0.7, "page", "/p", "/p"),
        wrk.Pick(0.2, "fixed", "/bad", "/bad"),
        wrk.Pick(0.05, "fixed", "/hang", "/hang"),
        wrk.Pick(0.05, "fixed", "/drop", "/drop"),
    ]
    params = wrk.Params(
        days=["2020-07-01", "2020-07-02", "2020-07-03", "2020-07-04"] + ["2020-07-05"] * 7,
        span=3,
        sentiments=["positive"],
        companies=["AT%26T"],
        ids=["1"],
        page_limit=3,
    )
    start = time.monotonic() + 0.2
    run = wrk.Run(
        f"http://127.0.0.1:{server.port}",
        {"Authorization": "Bearer k"},
        picks,
        params,
        (start, start + 0.5),
        seed=1,
        connections=4,
        drain=0.4,
    )
    out, stopped = run.finish()
    stop = start + 0.5
    assert run.endpoints == ["/p", "/bad", "/hang", "/drop"]
    assert stopped >= stop
    by_ep = {ep: [r for r in out.records if r[0] == ep] for ep in range(4)}
    assert by_ep[0] and by_ep[1]
    assert all(status == 200 for _, _, _, status in by_ep[0])
    assert all(status == 422 for _, _, _, status in by_ep[1])
    assert out.first_errors[1] == '422 {"detail": "no"}'
    assert all(answered >= start and sent < stop for _, sent, answered, _ in out.records)
    assert any(answered >= stop for _, _, answered, _ in out.records)  # in flight at the end: awaited
    assert [ep for ep, sent in out.unanswered] == [2]  # /hang
    drops = [status for ep, _, _, status in out.records if ep == 3]  # a failure (0), once at most
    assert set(drops) <= {0, 200} and drops.count(0) <= 1
    assert out.socket_errors["timeout"] == 0
    followed = 0
    for targets in server.targets.values():
        last_page: dict[str, str] | None = None
        for target in targets:
            if not target.startswith("/p?"):
                continue
            query = dict(parse_qsl(urlsplit(target).query))
            assert query["limit"] == "3" and "start_date" in query and "end_date" in query
            assert query.get("sentiment") == "positive" or query.get("company") == "AT&T"
            if "cursor" in query:  # the next page of this connection's last page, same filters
                assert last_page is not None
                assert query["cursor"] == {None: "c1", "c1": "c2"}[last_page.get("cursor")]
                assert {k: v for k, v in query.items() if k != "cursor"} == {
                    k: v for k, v in last_page.items() if k != "cursor"
                }
                followed += 1
            last_page = query
    assert followed > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_an_open_ended_window_ends_when_told_and_its_last_answers_are_awaited(server):
    params = wrk.Params(days=["2020-07-01"] * 8, span=0, sentiments=["positive"], companies=[], ids=["1"])
    start = time.monotonic() + 0.2
    run = wrk.Run(
        f"http://127.0.0.1:{server.port}",
        {},
        [wrk.Pick(1.0, "fixed", "/ok", "/ok")],
        params,
        (start, start + 600),  # the latest end
        seed=1,
        connections=2,
        drain=5,
        open_ended=True,
    )
    time.sleep(0.8)
    end = time.monotonic()
    run.end_window(end)
    out, stopped = run.finish()
    assert end <= stopped < end + 5  # not the 600 s
    assert out.records and all(status == 200 for *_, status in out.records)
    assert all(sent < end + 2 for _, sent, _, _ in out.records)  # each thread reads the end twice a second
    assert any(answered >= end for _, _, answered, _ in out.records)  # answers after the end awaited
    assert not out.unanswered
    closed = wrk.Run(
        f"http://127.0.0.1:{server.port}", {}, [wrk.Pick(1.0, "fixed", "/ok", "/ok")], params,
        (time.monotonic() + 0.3, time.monotonic() + 1), seed=1, connections=1, drain=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="open_ended"):
        closed.end_window(end)
    closed.finish()


def test_rounds_of_one_scenario_merge_into_one_window():
    """``--rounds``: requests and seconds add up, latencies form one distribution (a slow round
    weighs in the p99 with all its requests), errors and CPU are kept."""
    fast, slow = Recorder(0.0, 10.0), Recorder(100.0, 110.0)
    for i in range(100):
        fast.add("/staging", i / 10, i / 10 + 0.01, None)  # 100 completed, 10 ms each
    for i in range(50):
        slow.add("/staging", 100 + i / 6, 100 + i / 6 + 0.5, "502" if i == 0 else None)  # 500 ms
    a = result_of("mix", fast, 10.0, {"gateway": 0.5, "bench client": 0.1})
    b = result_of("mix", slow, 10.0, {"gateway": 0.7, "bench client": 0.1})
    both = merged([a, b])
    assert both.overall["requests"] == 150
    assert both.overall["requests_per_s"] == 7.5  # 150 completed in 20 s
    assert both.overall["p50_ms"] == 10.0
    assert both.overall["p99_ms"] == 500.0
    assert both.overall["errors"] == 1
    assert both.first_errors == {"/staging": "502"}
    assert both.cpu_cores == {"gateway": 0.6, "bench client": 0.1}
    assert merged([a]) is a


def test_the_summary_gives_each_rounds_figures():
    args = argparse.Namespace(concurrency=64, seconds=15.0, rounds=2)
    results = [result("mix", 400.0, 600.0, ["/staging"]), result("stores", 500.0, 300.0, ["/staging"])]
    rounds = {"mix": [r.overall for r in results[:1]] * 2}
    s = summary({"raw_rows": 1000, "staged_rows": 990}, args, results, None, rounds)
    assert s["rounds"] == 2
    assert s["by_round"] == {"mix": [{"requests_per_s": 400.0, "p99_ms": 600.0, "errors": 0}] * 2}
