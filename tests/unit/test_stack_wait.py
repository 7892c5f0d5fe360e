"""The stack's wait for a server: it says how long it has been waiting, and where the server's log is."""

from __future__ import annotations

import time

import pytest

from infra import stack


def test_a_long_start_is_reported_while_waiting_and_a_ready_server_ends_the_wait(capsys):
    ready_at = time.monotonic() + 0.7
    stack.wait_until(lambda: time.monotonic() >= ready_at, 5.0, "slowdb", note_every=0.3)
    notes = [line for line in capsys.readouterr().err.splitlines() if "slowdb" in line]
    assert notes and all("still starting after" in n and "(up to 5s)" in n for n in notes)
    assert len(notes) <= 2  # once per 0.3 s of the 0.7 s waited


def test_a_server_that_never_answers_fails_the_wait_naming_it():
    with pytest.raises(SystemExit, match="nodb not ready after 0s"):
        stack.wait_until(lambda: False, 0.3, "nodb", note_every=10.0)
