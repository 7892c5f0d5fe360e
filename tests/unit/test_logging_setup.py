"""``setup_logging``: JSON lines on stdout, at ``LAKE_LOG_LEVEL`` for every process that calls it
(the pipeline's services and the gateway alike)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from lake.observability import setup_logging


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_the_level_comes_from_lake_log_level_and_lines_are_json_on_stdout(monkeypatch, capsys):
    monkeypatch.setenv("LAKE_LOG_LEVEL", "DEBUG")
    setup_logging("gateway")
    logging.getLogger("lake.test").debug("seen at debug")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["msg"] == "seen at debug" and line["service"] == "gateway" and line["level"] == "debug"

    monkeypatch.setenv("LAKE_LOG_LEVEL", "WARNING")
    setup_logging("stager")
    logging.getLogger("lake.test").info("not seen")
    assert capsys.readouterr().out == ""


def test_without_the_variable_the_level_is_info_and_an_explicit_level_wins(monkeypatch):
    monkeypatch.delenv("LAKE_LOG_LEVEL", raising=False)
    setup_logging("curator")
    assert logging.getLogger().level == logging.INFO
    monkeypatch.setenv("LAKE_LOG_LEVEL", "DEBUG")
    setup_logging("curator", "ERROR")
    assert logging.getLogger().level == logging.ERROR
