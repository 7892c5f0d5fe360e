"""The FerretDB build's patches (infra/ferretdb_component.py) keep FerretDB's own unit tests green.

The patches change how the SQLite backend decodes stored documents and how documents pass the
projection step; FerretDB's tests of those packages check every BSON type's round trip. Run on a
patched copy of the released source, as the build makes it (Go from the machine, modules from the
Go module proxy)."""

from __future__ import annotations

import pathlib

from infra import ferretdb_component


def test_ferretdb_own_tests_pass_on_the_patched_source(tmp_path: pathlib.Path):
    result = ferretdb_component.run_upstream_tests(tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-4000:]
    for package in ("internal/handler/sjson", "internal/handler/common", "internal/backends/sqlite"):
        assert f"ok  \tgithub.com/FerretDB/FerretDB/{package}" in report, report[-4000:]
