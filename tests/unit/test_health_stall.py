"""When /health calls a layer stalled (services/gateway/routes/health.py, ``stalled_layers``): its
consumers have had lag for the whole period and none of its chunks finished in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.gateway.routes.health import LayerState, stalled_layers

WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def state(lag: int, last_chunk_s_ago: float | None) -> LayerState:
    at = None if last_chunk_s_ago is None else WALL - timedelta(seconds=last_chunk_s_ago)
    return LayerState(lag=lag, last_chunk_at=at)


def test_lag_with_no_chunk_done_for_the_whole_period_is_a_stall_and_clears_with_the_lag():
    since: dict[str, float] = {}
    states = {"stage": state(0, 5), "curate": state(40, 3600)}
    assert stalled_layers(states, since, now=1000.0, wall=WALL, after=60) == []  # lag just seen
    assert since == {"curate": 1000.0}
    assert stalled_layers(states, since, now=1059.0, wall=WALL, after=60) == []
    assert stalled_layers(states, since, now=1060.0, wall=WALL, after=60) == ["curate"]
    states["curate"] = state(0, 1)  # caught up
    assert stalled_layers(states, since, now=1061.0, wall=WALL, after=60) == [] and since == {}


def test_a_layer_that_finishes_chunks_is_busy_not_stalled_however_long_its_lag():
    since = {"curate": 0.0}
    assert stalled_layers({"curate": state(500, 30)}, since, now=10_000.0, wall=WALL, after=60) == []
    assert stalled_layers({"curate": state(500, None)}, since, now=10_000.0, wall=WALL, after=60) == [
        "curate"
    ]  # never finished a chunk
