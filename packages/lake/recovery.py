"""Redriving dead letters: shared by ``lake dlq redrive`` and ``POST /dead-letters/redrive``.

A redrive re-publishes each dead letter's original message, key and value byte for byte, to the
topic it failed on, with headers naming the letter and its attempts so far
(``lake.adapters.dead_letters``). It runs in three steps, so that a letter is redriven at most once
however often the request is sent, and never lost if the process dies midway:

1. **Claim**, in one transaction: the letters of the scope that are neither redriven nor claimed
   by a live redrive (a claim older than ``CLAIM_TIMEOUT_S`` is a redrive that died) are marked as
   claimed by this request. Runs whose every dead letter is now redriven or claimed go from
   ``failed`` back to ``running`` (history: ``redriven``) *before* their events are published, so
   the services see a running run. A second request for the same letters finds nothing to claim.
2. **Publish** the claimed messages and wait for Kafka's acknowledgement.
3. **Confirm**: the letters are marked redriven. If publishing failed, the claims are released and
   the reopened runs fail again with the reason; the request can be sent again.

A process that dies between 1 and 3 leaves claims that expire; a later redrive then publishes
those letters again — at most a duplicate delivery, which the handlers absorb (they are idempotent).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lake.adapters.broker import Publisher
from lake.adapters.dead_letters import COLUMNS, PRIOR_ATTEMPTS, REDRIVE_OF, Letter, Scope
from lake.adapters.mysql import utc_now
from lake.adapters.run_ledger import RunLedger, add_history, reopen_failed
from lake.events import ChunkCounts, StagedChunkReady
from lake.settings import Settings
from lake.transform.stage import staged_key

CLAIM_TIMEOUT_S = 300


@dataclass
class Redriven:
    request_id: str
    letters: list[str] = field(default_factory=list)
    runs_reopened: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "redriven": len(self.letters),
            "letters": self.letters,
            "runs_reopened": self.runs_reopened,
        }


def redrive(repo: RunLedger, publisher: Publisher, scope: Scope, requested_by: str) -> Redriven:
    """Publish the dead letters in ``scope`` again, each at most once, and reopen each failed run
    none of whose letters waits any more. In three steps: the letters are claimed under a request
    id and their runs reopened, in one transaction; they are published with their redrive headers;
    they are marked redriven. If publishing fails, the claim is released and the reopened runs
    fail again; a claim left by a crash expires after ``CLAIM_TIMEOUT_S``."""
    request = Redriven(request_id=uuid.uuid4().hex)
    conn = repo.conn
    now = utc_now()
    try:
        with conn.cursor() as cur:
            claimed = _claim(cur, scope, request.request_id, now)
            _reopen_runs(cur, claimed, request, requested_by, now)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    try:
        for x in claimed:
            headers = [(REDRIVE_OF, x.letter_id.encode()), (PRIOR_ATTEMPTS, str(x.attempts).encode())]
            publisher.publish_bytes(x.source_topic, x.event_key, x.event_value, headers)
        publisher.flush()
    except Exception as exc:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE dead_letters SET redrive_claimed_at = NULL, redrive_request = NULL"
                " WHERE redrive_request = %s AND redriven_at IS NULL",
                (request.request_id,),
            )
        conn.commit()
        # every claimed letter's run, reopened or not: a run that was still running when its letter
        # was claimed did not fail meanwhile (RunLedger.fail_run spares a claimed letter's run)
        for run_id in sorted({x.run_id for x in claimed if x.run_id}):
            repo.fail_run(run_id, f"redrive {request.request_id} could not publish: {exc}")
        raise
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE dead_letters SET redriven_at = %s WHERE redrive_request = %s AND redriven_at IS NULL",
            (utc_now(), request.request_id),
        )
    conn.commit()
    request.letters = [x.letter_id for x in claimed]
    return request


def _claim(cur: Any, scope: Scope, request_id: str, now: datetime) -> list[Letter]:
    """Claim the scope's letters not redriven yet (nor claimed by a live request) for ``request_id``."""
    where, args = scope.where()
    cur.execute(
        "UPDATE dead_letters SET redrive_claimed_at = %s, redrive_request = %s"
        f" WHERE {where} AND redriven_at IS NULL AND (redrive_claimed_at IS NULL"
        " OR redrive_claimed_at < %s - INTERVAL %s SECOND)",
        [now, request_id, *args, now, CLAIM_TIMEOUT_S],
    )
    cur.execute(
        f"SELECT {', '.join(COLUMNS)} FROM dead_letters WHERE redrive_request = %s"
        " AND redriven_at IS NULL ORDER BY seq",
        (request_id,),
    )
    return [Letter.of(r) for r in cur.fetchall()]


def _reopen_runs(
    cur: Any, claimed: list[Letter], request: Redriven, requested_by: str, now: datetime
) -> None:
    """Each failed run of the claimed letters that has no other letter waiting goes back to
    ``running``; every run's history notes the redrive."""
    for run_id in sorted({x.run_id for x in claimed if x.run_id}):
        cur.execute(
            "SELECT COUNT(*) FROM dead_letters WHERE run_id = %s AND redriven_at IS NULL"
            " AND NOT (redrive_request <=> %s)",
            (run_id, request.request_id),
        )
        left = cur.fetchone()
        if left and int(left[0]) == 0 and reopen_failed(cur, run_id):
            request.runs_reopened.append(run_id)
        n = sum(1 for x in claimed if x.run_id == run_id)
        detail = f"{n} dead letter(s) by {requested_by[:64]} ({request.request_id})"
        add_history(cur, run_id, "redriven", detail, now)


def redrive_dead_letters(settings: Settings, scope: Scope, requested_by: str) -> Redriven:
    """:func:`redrive` on connections of its own (the CLI's and the gateway's entry point)."""
    from lake.adapters.broker import make_producer

    repo = RunLedger(settings.mysql)
    publisher = Publisher(make_producer(settings, "lake-redrive"), settings)
    try:
        return redrive(repo, publisher, scope, requested_by)
    finally:
        publisher.close()
        repo.close()


def replay_run(settings: Settings, run_id: str, layer: str, requested_by: str) -> int:
    """Rebuild a finished run from a layer (``POST /runs/{id}/replay``, ``lake replay``); the
    number of chunks published again. Raises ``RunNotReplayable`` (unknown, in progress, or
    missing what the layer needs).

    - ``curate``: after a tokenizer or vocabulary change, or an enrichment rule's. The run is
      reopened (``RunLedger.reopen_for_replay``), then each staged chunk's ``staged.ready``
      is published again; the curators rewrite the documents in place, their list items and
      revisions, and the Parquet, and the run is finalised again with the same counts. Staging is
      left as it is.
    - ``stage``: after a cleaning rule changed (``LAKE_SENTIMENT_*``, ``LAKE_MIN_CLEAN_TEXT_CHARS``,
      or the code). The run is reopened with its staged progress cleared too
      (``reopen_for_stage_replay``), and each raw chunk's ``raw.ready``, as the ingestor published
      it, is published again marked as a replay: each stager replaces what the chunk staged with
      what the rules give now, and the curators then rewrite, add or remove its documents."""
    from lake.adapters.broker import make_producer
    from lake.events import Event

    if layer not in ("curate", "stage"):
        raise ValueError(f"unknown layer {layer!r}: curate or stage")
    repo = RunLedger(settings.mysql)
    publisher = Publisher(make_producer(settings, "lake-replay"), settings)
    try:
        events: list[Event]
        if layer == "stage":
            events = list(repo.reopen_for_stage_replay(run_id, requested_by))
        else:
            events = list(curate_again(settings, run_id, repo.reopen_for_replay(run_id, requested_by)))
        try:
            for event in events:
                publisher.publish(event)
            publisher.flush()
        except Exception as exc:
            repo.fail_run(run_id, f"replay from {layer} could not publish: {exc}")
            raise
        return len(events)
    finally:
        publisher.close()
        repo.close()


def curate_again(
    settings: Settings, run_id: str, chunks: list[tuple[int, dict[str, int]]]
) -> list[StagedChunkReady]:
    """The ``staged.ready`` events a replay from curate publishes: one per staged chunk (chunk id,
    counts, as ``StagingRepository.reopen_for_replay`` returns them), marked as a replay."""
    return [
        StagedChunkReady(
            run_id=run_id,
            chunk_id=chunk_id,
            bucket=settings.s3.staging_bucket,
            key=staged_key(run_id, chunk_id),
            counts=ChunkCounts(**counts),
            replay=True,
        )
        for chunk_id, counts in chunks
    ]
