"""The pipeline dashboard: a page at ``/dashboard`` and the one summary it refreshes from.

The page itself is public (it holds no data); it asks for an API key, keeps it for the browser
session and sends it as a bearer header. Its data comes from ``GET /dashboard/overview`` and
``GET /stats/daily``, which any role that may read stats (viewer and up) can call: the overview shows
recent runs, the consumer groups' lag and the dead-letter depth as aggregates only (no source, no
requester, only the kind of a run's failure, no rows).

Every script and style is served by the gateway from ``static/dashboard`` (the charts are drawn as
SVG by the page's own script): nothing is fetched from a CDN, and the page's Content-Security-Policy
forbids it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from kafka.errors import KafkaError
from pydantic import BaseModel, Field

from lake import auth
from services.gateway.deps import StoresDep, Viewer
from services.gateway.kafka_state import current as kafka_state
from services.gateway.read import runs, stats

router = APIRouter(tags=["dashboard"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "dashboard" / "index.html"
RECENT_RUNS = 10
# Same-origin only: scripts, styles, images and data calls come from the gateway itself.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def error_class(error: str | None) -> str | None:
    """What went wrong, without the details: ``ingest refused: /x is outside [...]`` becomes
    ``ingest refused`` (details may name paths and settings; analysts read them at /runs/{id})."""
    return None if error is None else error.split(":", 1)[0][:100]


class RunSummary(BaseModel):
    run_id: str
    status: str
    error: str | None = Field(description="the kind of failure only (details at /runs/{id}, analyst)")
    requested_at: datetime
    finished_at: datetime | None
    raw_rows: int
    staged_rows: int
    rejected_rows: int
    duplicate_rows: int
    curated_docs: int
    layers: dict[str, str] = Field(description="layer -> pending, running, succeeded or failed")
    rejected_by_reason: dict[str, int]


class PipelineSummary(BaseModel):
    lag: dict[str, int] = Field(description="service -> messages its consumer group has not committed")
    dead_letters: dict[str, int]
    dead_letter_total: int


class DeadLetterSummary(BaseModel):
    letter_id: str
    run_id: str | None
    topic: str
    service: str
    chunk_id: int | None
    error: str = Field(description="the message for analyst and admin keys; the kind only for viewers")
    attempts: int
    last_failed_at: datetime


class Overview(BaseModel):
    generated_at: datetime
    role: str = Field(description="the key's role: the page offers a redrive to admin keys only")
    stats: stats.Stats
    runs: list[RunSummary] = Field(description=f"the {RECENT_RUNS} most recent runs, newest first")
    pipeline: PipelineSummary | None = Field(description="null when Kafka cannot be reached")
    pipeline_error: str | None = None
    dead_letters: list[DeadLetterSummary] = Field(
        description=f"dead letters not redriven yet of the {RECENT_RUNS} most recent runs, newest first"
    )


@router.get("/dashboard", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Content-Security-Policy": CSP})


async def _pipeline(stores: StoresDep) -> tuple[PipelineSummary | None, str | None]:
    """Kafka's part of the overview, shared by every dashboard for 2 s (a snapshot is six admin
    calls); the dashboard still shows the stores when Kafka is down."""
    try:
        state = await stores.pipeline.get(lambda: kafka_state(stores))
    except (KafkaError, OSError) as exc:  # the client was closed: the next snapshot makes another
        return None, f"kafka: {type(exc).__name__}"
    return (
        PipelineSummary(
            lag={g["service"]: g["lag"] for g in state["consumer_groups"]},
            dead_letters=state["dead_letters"],
            dead_letter_total=state["dead_letter_total"],
        ),
        None,
    )


async def waiting_letters(stores: StoresDep, run_ids: list[str], details: bool) -> list[DeadLetterSummary]:
    """The dead letters of these runs that wait for a redrive (at most 50), newest first."""
    if not run_ids:
        return []
    prefix = stores.settings.kafka.topic_prefix
    async with stores.mysql.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT letter_id, run_id, source_topic, service, chunk_id, error, attempts, last_failed_at"
            f" FROM dead_letters WHERE run_id IN ({', '.join(['%s'] * len(run_ids))})"
            " AND redriven_at IS NULL ORDER BY seq DESC LIMIT 50",
            run_ids,
        )
        rows = await cur.fetchall()
    return [
        DeadLetterSummary(
            letter_id=lid,
            run_id=run_id,
            topic=topic.removeprefix(prefix),
            service=service,
            chunk_id=chunk,
            error=error if details else (error_class(error) or ""),
            attempts=attempts,
            last_failed_at=at.replace(tzinfo=UTC),
        )
        for lid, run_id, topic, service, chunk, error, attempts, at in rows
    ]


@router.get(
    "/dashboard/overview",
    response_model=Overview,
    summary="What the dashboard shows: totals, recent runs, pipeline lag and dead letters (viewer)",
)
async def overview(stores: StoresDep, role: Viewer) -> Overview:
    totals = stats.Stats.model_validate_json(await stats.shared_totals(stores))
    reports = await runs.recent(stores, RECENT_RUNS)
    letters = await waiting_letters(stores, [r.run_id for r in reports], auth.allows(role, "analyst"))
    state, error = await _pipeline(stores)
    return Overview(
        generated_at=datetime.now(UTC),
        role=role,
        dead_letters=letters,
        stats=totals,
        runs=[
            RunSummary(
                **r.model_dump(include=set(RunSummary.model_fields) - {"layers", "error"}),
                error=error_class(r.error),
                layers={name: layer.status for name, layer in r.layers.items()},
            )
            for r in reports
        ],
        pipeline=state,
        pipeline_error=error,
    )
