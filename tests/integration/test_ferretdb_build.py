"""The FerretDB build's patches (infra/ferretdb_component.py) keep FerretDB's own unit tests green.

The patches change how the SQLite backend decodes stored documents, how documents pass the
projection step, and where a collection's `_id` is kept (a column of its own, which tables made
before get when FerretDB starts); FerretDB's tests of those packages check every BSON type's round
trip and the backend's statements, and the build adds a test of that migration. Run on a
patched copy of the released source, as the build makes it (Go from the machine, modules from the
Go module proxy)."""

from __future__ import annotations

import pathlib

from infra import ferretdb_component


def test_ferretdb_own_tests_pass_on_the_patched_source(tmp_path: pathlib.Path):
    result = ferretdb_component.run_upstream_tests(tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-4000:]
    packages = ("handler/sjson", "handler/common", "backends/sqlite", "backends/sqlite/metadata")
    for package in packages:
        assert f"ok  \tgithub.com/FerretDB/FerretDB/internal/{package}\t" in report, report[-4000:]
