"""What the scenarios of ``make bench-api`` (``bench.api``) share: the data they query, the rules of
the measuring window, and the CPU counters read around it."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bench.pipeline import cpu_seconds, parent_pids


@dataclass(frozen=True)
class Dataset:
    run_id: str
    counts: dict[str, int]
    first_day: date
    last_day: date
    companies: list[str]
    ids: list[str]


@dataclass
class Figures:
    completed: int = 0  # inside the window: the throughput
    latencies: list[float] = field(default_factory=list)  # of every request in flight during it
    errors: int = 0  # among those
    first_error: str | None = None


class Recorder:
    """Per endpoint: the requests completed inside [start, stop) (the rate), and the latency and
    outcome of every request in flight during it, each awaited to its end: a request slower than the
    window still counts (it started in the warm-up, or ends after the window)."""

    def __init__(self, start: float, stop: float) -> None:
        self.start, self.stop = start, stop
        self.by_endpoint: dict[str, Figures] = {}

    def add(self, endpoint: str, t0: float, t1: float, error: str | None) -> None:
        fig = self.by_endpoint.setdefault(endpoint, Figures())
        if self.start <= t1 < self.stop:
            fig.completed += 1
        if t0 < self.stop and t1 >= self.start:
            fig.latencies.append(t1 - t0)
            if error is not None:
                fig.errors += 1
                fig.first_error = fig.first_error or error


def percentile_ms(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank, in milliseconds; None without values."""
    if not sorted_values:
        return None
    return round(sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)] * 1000, 2)


def summarise(completed: int, latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    values = sorted(latencies)
    return {
        "requests": len(values),
        "requests_per_s": round(completed / seconds, 1),
        "p50_ms": percentile_ms(values, 50),
        "p99_ms": percentile_ms(values, 99),
        "errors": errors,
    }


@dataclass
class ScenarioResult:
    name: str
    endpoints: dict[str, dict[str, Any]]  # by endpoint label
    overall: dict[str, Any]
    first_errors: dict[str, str]
    cpu_cores: dict[str, float]
    curated_cache: dict[str, float] | None = None  # hits, misses, hit_share of the gateway's cache
    figures: dict[str, Figures] = field(default_factory=dict)  # by endpoint: what merged() adds up
    seconds: float = 0.0  # measured


def result_of(name: str, rec: Recorder, seconds: float, cores: dict[str, float]) -> ScenarioResult:
    return _result(name, rec.by_endpoint, seconds, cores)


def _result(
    name: str, by_endpoint: dict[str, Figures], seconds: float, cores: dict[str, float]
) -> ScenarioResult:
    figs = sorted(by_endpoint.items())
    endpoints = {ep: summarise(f.completed, f.latencies, f.errors, seconds) for ep, f in figs}
    overall = summarise(
        sum(f.completed for _, f in figs),
        [x for _, f in figs for x in f.latencies],
        sum(f.errors for _, f in figs),
        seconds,
    )
    first_errors = {ep: f.first_error for ep, f in figs if f.first_error}
    return ScenarioResult(name, endpoints, overall, first_errors, cores, figures=dict(figs), seconds=seconds)


def merged(rounds: list[ScenarioResult]) -> ScenarioResult:
    """One scenario measured in several windows (``--rounds``) as one: requests completed and
    seconds added up, every latency in one distribution, CPU cores averaged over the windows."""
    if len(rounds) == 1:
        return rounds[0]
    figs: dict[str, Figures] = {}
    for r in rounds:
        for ep, f in r.figures.items():
            m = figs.setdefault(ep, Figures())
            m.completed += f.completed
            m.latencies += f.latencies
            m.errors += f.errors
            m.first_error = m.first_error or f.first_error
    names = dict.fromkeys(n for r in rounds for n in r.cpu_cores)
    cores = {n: round(sum(r.cpu_cores.get(n, 0.0) for r in rounds) / len(rounds), 2) for n in names}
    out = _result(rounds[0].name, figs, sum(r.seconds for r in rounds), cores)
    for r in rounds:
        out.first_errors = r.first_errors | out.first_errors
    caches = [r.curated_cache for r in rounds if r.curated_cache]
    if caches:
        hits, misses = (sum(c[k] for c in caches) for k in ("hits", "misses"))
        out.curated_cache = {"hits": hits, "misses": misses, "hit_share": round(hits / (hits + misses), 3)}
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of a process and its living descendants (the gateway's workers)."""
    parents = parent_pids()
    tree, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        todo += children
    return sum(cpu_seconds(p) for p in tree)


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine used so far (every core; /proc/stat, no idle or iowait)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of the processes in ``pids`` (with their descendants), of the load generator
    (``client()``) and of the whole machine, read at the window's start and end: cores used."""

    def __init__(self, pids: dict[str, int], client: Callable[[], float]) -> None:
        self.pids, self.client = pids, client
        self.first: tuple[dict[str, float], float] | None = None

    def read(self) -> dict[str, float]:
        own = {n: tree_cpu_seconds(p) for n, p in self.pids.items()} | {"bench client": self.client()}
        return own | {"whole machine": machine_busy_seconds()}

    def begin(self) -> None:
        self.first = self.read(), time.monotonic()

    def cores(self) -> dict[str, float]:
        assert self.first is not None, "begin() first"
        (cpu0, wall0), cpu1, wall1 = self.first, self.read(), time.monotonic()
        return {n: round((cpu1[n] - cpu0[n]) / (wall1 - wall0), 2) for n in cpu0}
