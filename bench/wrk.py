"""One scenario of ``make bench-api`` driven by wrk (Debian's ``wrk``: C, with LuaJIT scripts).

wrk costs several times less client CPU per request than the Python client it replaced (see the
docstring of ``bench.api``), and the load generator shares the machine's cores with the gateway and
the stores. ``bench/api.lua`` builds each request (mixed endpoints, random filters, the next page
by ``next_cursor`` on the same connection), times it, and writes every request's send and answer
times to a file when wrk ends; this module writes the scenario for it, runs wrk with one connection
per thread, and reads that file back (:func:`parse_output`). wrk's own latency figures are not
used: it leaves answers slower than ``--timeout`` out of them (it counts them as "timeouts", though
it still reads them), and they cover wrk's whole ``-d``, warm-up included. Here ``--timeout`` is
longer than the whole run anyway, and a request still unanswered when wrk is stopped (``drain``
seconds after the window) is an error whose latency is at least that long.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

SCRIPT = Path(__file__).with_name("api.lua")
INSTALL_HINT = "wrk is not installed: `apt-get install wrk` (Debian's package; as root or with sudo)"


@dataclass(frozen=True)
class Pick:
    """One kind of request of a scenario, chosen with probability ``share``: a filtered ``page`` of
    ``path`` (or, with probability ``follow_cursor``, the next page of the connection's last page
    of ``path``), a ``lookup`` of ``path`` + a sampled tweet id, or a ``fixed`` target (path and
    query as sent)."""

    share: float
    kind: Literal["page", "lookup", "fixed"]
    endpoint: str  # the label the figures are grouped by
    path: str


@dataclass(frozen=True)
class Params:
    """What the requests are made of: the data's days (ISO, from its first day to 7 days past its
    last), its span in days (last - first), sentiments, URL-encoded companies and tweet ids."""

    days: Sequence[str]
    span: int
    sentiments: Sequence[str]
    companies: Sequence[str]
    ids: Sequence[str]
    page_limit: int = 50
    follow_cursor: float = 0.5


@dataclass
class Output:
    """What ``bench/api.lua`` wrote: every request answered (or failed: status 0) at or after the
    window's start as (endpoint index, sent, answered, status); the requests sent before the
    window's end and still unanswered when wrk stopped as (endpoint index, sent); the first error
    message per endpoint; wrk's socket error counters."""

    records: list[tuple[int, float, float, int]] = field(default_factory=list)
    unanswered: list[tuple[int, float]] = field(default_factory=list)
    first_errors: dict[int, str] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(f"[bench] {INSTALL_HINT}")
    return found


def lua(value: object) -> str:
    """A Lua literal of a str, int, float, bool, list, tuple or dict with identifier keys; strings
    with decimal byte escapes (Lua 5.1 has no ``\\u``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        plain = {*range(0x20, 0x7F)} - {ord('"'), ord("\\")}
        return '"' + "".join(chr(b) if b in plain else f"\\{b:03d}" for b in value.encode()) + '"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def parse_output(text: str) -> Output:
    """Read the file ``done()`` of ``bench/api.lua`` wrote (one line per item, see there)."""
    out = Output()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "R":
            ep, sent, answered, status = rest.split()
            out.records.append((int(ep), float(sent), float(answered), int(status)))
        elif kind == "P":
            ep, sent = rest.split()
            out.unanswered.append((int(ep), float(sent)))
        elif kind == "E":
            ep, _, message = rest.partition(" ")
            out.first_errors.setdefault(int(ep), message)
        elif kind == "W":
            names = ("connect", "read", "write", "status", "timeout")
            out.socket_errors = dict(zip(names, (int(v) for v in rest.split()), strict=True))
        elif line:
            raise ValueError(f"unexpected line in wrk's output: {line[:200]!r}")
    return out


class Run:
    """wrk running one scenario against ``url`` from now until ``stop`` (``time.monotonic()``),
    measuring from ``start``, with ``connections`` connections (one per thread); then every thread
    waits for the answer to its last request, for at most ``drain`` seconds. With
    ``open_ended=True``, ``stop`` is only the latest end: :meth:`end_window` ends the window
    earlier, when what the scenario waits for is over (wrk's threads read the new end from a file)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        picks: Sequence[Pick],
        params: Params,
        window: tuple[float, float],
        seed: int,
        connections: int,
        drain: float,
        open_ended: bool = False,
    ) -> None:
        wrk = require_wrk()
        self.endpoints = list(dict.fromkeys(p.endpoint for p in picks))
        self.start, self.stop = window
        self.drain = drain
        self.dir = Path(tempfile.mkdtemp(prefix="bench-api-wrk-"))
        fixed = {"Host": urlsplit(url).netloc, "Accept": "application/json"} | headers
        config = {
            "start": self.start,
            "stop": self.stop,
            "seed": seed,
            "out": str(self.dir / "requests.txt"),
            "head_tail": "".join(f"{k}: {v}\r\n" for k, v in fixed.items()) + "\r\n",
            "picks": [
                {"share": p.share, "kind": p.kind, "ep": self.endpoints.index(p.endpoint), "path": p.path}
                for p in picks
            ],
            "days": list(params.days),
            "span": params.span,
            "sentiments": list(params.sentiments),
            "companies": list(params.companies),
            "ids": list(params.ids),
            "page_limit": params.page_limit,
            "follow_cursor": params.follow_cursor,
        }
        self.stop_file = self.dir / "stop.txt" if open_ended else None
        if self.stop_file is not None:
            config["stop_file"] = str(self.stop_file)
        (self.dir / "scenario.lua").write_text("return " + lua(config) + "\n")
        seconds = math.ceil(self.stop - time.monotonic() + drain)
        cmd = [wrk, f"-t{connections}", f"-c{connections}", f"-d{seconds}s", f"--timeout={seconds + 60}s"]
        with (self.dir / "stdout.txt").open("wb") as out, (self.dir / "stderr.txt").open("wb") as err:
            self.proc = subprocess.Popen(
                [*cmd, "-s", str(SCRIPT), url],
                stdout=out,
                stderr=err,
                env=os.environ | {"BENCH_API_WRK_CONFIG": str(self.dir / "scenario.lua")},
            )

    def end_window(self, at: float) -> None:
        """End an open-ended window at ``at`` (``time.monotonic()``, now or later): each thread stops at
        its first answer after it."""
        if self.stop_file is None:
            raise ValueError("end_window needs a Run made with open_ended=True")
        self.stop = min(self.stop, at)
        tmp = self.stop_file.with_suffix(".part")
        tmp.write_text(f"{self.stop:.6f}")
        tmp.replace(self.stop_file)  # whole or absent for the threads reading it

    def threads(self) -> int:
        """wrk's living threads, its main thread included (0 once it exited)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/task"))
        except OSError:
            return 0

    def finish(self) -> tuple[Output, float]:
        """Once every connection's last answer came (or ``drain`` passed), stop wrk's main thread
        (it sleeps for the whole ``-d``; SIGINT ends its sleep), and read what the script wrote;
        with the time wrk was stopped."""
        time.sleep(max(0.0, self.stop - time.monotonic()))
        deadline = self.stop + self.drain
        while self.proc.poll() is None and self.threads() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            text = (self.dir / "requests.txt").read_text()
        except OSError:
            err = (self.dir / "stderr.txt").read_text(errors="replace")[-2000:]
            raise SystemExit(
                f"[bench] wrk exited {self.proc.returncode} without its results: {err}"
            ) from None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return parse_output(text), stopped
