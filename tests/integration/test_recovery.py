"""Dead letters in MySQL and their redrive's claim (lake.recovery), against the real MariaDB: a
letter is redriven at most once, a failed publish releases it, a dead redrive's claim expires, a
redrive claiming a letter before its run was failed leaves the run running, and a redriven
delivery that fails again adds its attempts to the earlier letter's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from lake.adapters.broker import Publisher
from lake.adapters.dead_letters import PRIOR_ATTEMPTS, REDRIVE_OF, DeadLetterStore, Scope
from lake.adapters.run_ledger import RunLedger
from lake.recovery import redrive
from tests.fakes import CollectingPublisher


def record(letters: DeadLetterStore, run_id: str, chunk: int) -> str:
    """A delivery of chunk ``chunk`` of ``run_id`` given up by the stager, recorded as the loop does."""
    return letters.record(
        topic="t.raw.ready",
        partition=0,
        offset=hash((run_id, chunk)) & 0xFFFFFF,
        service="stager",
        run_id=run_id,
        chunk_id=chunk,
        error_type="OSError",
        error="the store was down",
        attempts=5,
        key=f"{run_id}:{chunk}".encode(),
        value=b'{"run_id": "' + run_id.encode() + b'"} \xff: not UTF-8, kept as sent',
        headers=[],
        at=datetime.now(UTC).replace(tzinfo=None),
    )


def failed_run(ledger: RunLedger, letters: DeadLetterStore, n: int = 1) -> tuple[str, list[str]]:
    """A run whose ``n`` chunks were dead-lettered by the stager, as the consumer loop records them:
    the letter, then the run's failure."""
    run_id = f"rc-{uuid.uuid4().hex[:8]}"
    ledger.create_run(run_id, {"source": "generated"}, "test")
    ids = []
    for chunk in range(n):
        ids.append(record(letters, run_id, chunk))
        ledger.fail_run(run_id, f"chunk {chunk} dead-lettered by the stager", ids[-1])
    return run_id, ids


def publisher(pub: CollectingPublisher) -> Publisher:
    return cast(Publisher, pub)


def status(ledger: RunLedger, run_id: str) -> str | None:
    found = ledger.run_status(run_id)
    return None if found is None else found[0]


def test_a_letter_is_redriven_at_most_once_and_reopens_its_run(ledger):
    letters = DeadLetterStore(ledger)
    run_id, [lid] = failed_run(ledger, letters)
    pub = CollectingPublisher()
    done = redrive(ledger, publisher(pub), Scope(run_id=run_id), "test")
    assert (done.letters, done.runs_reopened) == ([lid], [run_id])
    [(topic, key, value, headers)] = pub.messages
    stored = letters.get(lid)
    assert stored is not None and stored.redriven_at is not None
    assert (topic, key, value) == ("t.raw.ready", stored.event_key, stored.event_value)  # byte for byte
    assert dict(headers) == {REDRIVE_OF: lid.encode(), PRIOR_ATTEMPTS: b"5"}
    assert status(ledger, run_id) == "running"
    again = redrive(ledger, publisher(pub), Scope(letter_id=lid), "test")  # the request retried
    assert again.letters == [] and len(pub.messages) == 1


def test_a_run_reopens_only_when_none_of_its_letters_waits(ledger):
    letters = DeadLetterStore(ledger)
    run_id, [a, b] = failed_run(ledger, letters, n=2)
    pub = CollectingPublisher()
    assert redrive(ledger, publisher(pub), Scope(letter_id=a), "test").runs_reopened == []
    assert status(ledger, run_id) == "failed"  # chunk 1 still waits: the run could never end
    assert redrive(ledger, publisher(pub), Scope(letter_id=b), "test").runs_reopened == [run_id]


def test_a_failed_publish_releases_the_claim_and_fails_the_run_again(ledger):
    letters = DeadLetterStore(ledger)
    run_id, [lid] = failed_run(ledger, letters)
    pub = CollectingPublisher()
    pub.fail_flush = RuntimeError("Kafka did not acknowledge")
    with pytest.raises(RuntimeError):
        redrive(ledger, publisher(pub), Scope(run_id=run_id), "test")
    assert status(ledger, run_id) == "failed"
    found = ledger.run_status(run_id)
    assert found is not None and "could not publish" in (found[1] or "")
    stored = letters.get(lid)
    assert stored is not None and stored.redriven_at is None
    pub.fail_flush = None
    assert redrive(ledger, publisher(pub), Scope(run_id=run_id), "test").letters == [lid]


def test_a_redrive_between_a_letter_and_its_runs_failure_does_not_leave_the_run_failed(ledger):
    # The loop records a letter, then fails its run: a redrive in between claims the letter while
    # the run still runs, so it reopens nothing. The failure that comes after must not stick, or
    # the run would stay failed once its chunk is processed again, with no letter left to redrive.
    letters = DeadLetterStore(ledger)
    run_id = f"rc-{uuid.uuid4().hex[:8]}"
    ledger.create_run(run_id, {"source": "generated"}, "test")
    lid = record(letters, run_id, 0)
    done = redrive(ledger, publisher(CollectingPublisher()), Scope(run_id=run_id), "test")
    assert (done.letters, done.runs_reopened) == ([lid], [])
    ledger.fail_run(run_id, "chunk 0 dead-lettered by the stager", lid)
    assert status(ledger, run_id) == "running"
    found = ledger.run_status(run_id)
    assert found is not None and found[1] is None  # no error recorded on the run
    # a letter no redrive has claimed fails its run; a failure with no letter (none recorded in
    # MySQL, a redrive that could not publish) fails it whatever the letters
    other, _ = failed_run(ledger, letters)
    assert status(ledger, other) == "failed"
    reopened = redrive(ledger, publisher(CollectingPublisher()), Scope(run_id=other), "test")
    assert reopened.runs_reopened == [other]
    ledger.fail_run(other, "redrive could not publish")
    assert status(ledger, other) == "failed"


def test_a_redrive_that_cannot_publish_fails_every_claimed_letters_run_even_one_not_reopened(ledger):
    # its letter claimed while the run still ran (nothing reopened), and the run's own failure then
    # spared: when the publish fails, the redrive fails that run too, naming why
    letters = DeadLetterStore(ledger)
    run_id = f"rc-{uuid.uuid4().hex[:8]}"
    ledger.create_run(run_id, {"source": "generated"}, "test")
    lid = record(letters, run_id, 0)
    pub = CollectingPublisher()
    pub.fail_flush = RuntimeError("Kafka did not acknowledge")
    with pytest.raises(RuntimeError):
        redrive(ledger, publisher(pub), Scope(run_id=run_id), "test")
    found = ledger.run_status(run_id)
    assert found is not None and found[0] == "failed" and "could not publish" in (found[1] or "")
    ledger.fail_run(run_id, "chunk 0 dead-lettered by the stager", lid)  # the loop's, after: no change
    assert status(ledger, run_id) == "failed"


def test_the_claim_of_a_redrive_that_died_expires(ledger):
    letters = DeadLetterStore(ledger)
    run_id, [lid] = failed_run(ledger, letters)
    stale = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
    with ledger.conn.cursor() as cur:  # claimed by a redrive that died before publishing
        cur.execute(
            "UPDATE dead_letters SET redrive_claimed_at = %s, redrive_request = 'dead' WHERE letter_id = %s",
            (stale, lid),
        )
    ledger.conn.commit()
    pub = CollectingPublisher()
    assert redrive(ledger, publisher(pub), Scope(run_id=run_id), "test").letters == [lid]
    with ledger.conn.cursor() as cur:  # a live claim is left alone
        cur.execute(
            "UPDATE dead_letters SET redriven_at = NULL, redrive_claimed_at = %s WHERE letter_id = %s",
            (datetime.now(UTC).replace(tzinfo=None), lid),
        )
    ledger.conn.commit()
    assert redrive(ledger, publisher(pub), Scope(run_id=run_id), "test").letters == []


def test_a_redriven_delivery_that_fails_again_counts_every_attempt(ledger):
    letters = DeadLetterStore(ledger)
    run_id, [lid] = failed_run(ledger, letters)
    first = letters.get(lid)
    assert first is not None
    kw: dict[str, Any] = {
        "topic": "t.raw.ready",
        "partition": 1,
        "offset": 77,
        "service": "stager",
        "run_id": run_id,
        "chunk_id": 0,
        "error_type": "OSError",
        "error": "still down",
        "attempts": 5,
        "key": first.event_key,
        "value": first.event_value,
        "headers": [(REDRIVE_OF, lid.encode()), (PRIOR_ATTEMPTS, b"5")],
        "at": datetime.now(UTC).replace(tzinfo=None),
    }
    again = letters.record(**kw)
    stored = letters.get(again)
    assert stored is not None
    assert (stored.redrive_of, stored.attempts, stored.first_failed_at) == (lid, 10, first.first_failed_at)
    letters.record(**kw)  # the same delivery recorded again (redelivered after a crash)
    stored = letters.get(again)
    assert stored is not None and stored.attempts == 15
    assert [x.letter_id for x in letters.list(run_id=run_id)] == [again, lid]  # newest first


def test_a_scope_is_exactly_one_thing():
    for bad in ({}, {"run_id": "r", "topic": "t"}, {"letter_id": "l", "all": True}):
        with pytest.raises(ValueError, match="exactly one"):
            Scope(**bad)
    assert Scope(all=True).where() == ("TRUE", [])
