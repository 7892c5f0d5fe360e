"""The local FerretDB's insert batch (LAKE_FERRETDB_INSERT_BATCH): a clear error for a value the
build would not honour, the default when it is unset or empty."""

from __future__ import annotations

import pathlib

import pytest

from infra import ferretdb_component


@pytest.mark.parametrize(("value", "expected"), [(None, 1000), ("", 1000), ("1", 1), ("10000", 10_000)])
def test_the_insert_batch_defaults_to_1000_and_takes_1_to_10000(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("LAKE_FERRETDB_INSERT_BATCH", raising=False)
    else:
        monkeypatch.setenv("LAKE_FERRETDB_INSERT_BATCH", value)
    assert ferretdb_component.insert_batch() == expected
    argv, _ = ferretdb_component.command(pathlib.Path("cache"), pathlib.Path("data"), 1)
    assert argv[argv.index("-insert-batch-size") + 1] == str(expected)


@pytest.mark.parametrize("value", ["0", "10001", "-5", "1e3", "many"])
def test_an_insert_batch_out_of_range_stops_the_stack_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("LAKE_FERRETDB_INSERT_BATCH", value)
    with pytest.raises(SystemExit, match="LAKE_FERRETDB_INSERT_BATCH must be 1 to 10000"):
        ferretdb_component.insert_batch()
