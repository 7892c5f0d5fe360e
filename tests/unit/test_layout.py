"""The code's rooms stay small: no function in ``packages/`` or ``services/`` over 60 lines
(issue 16; a long function is split into named steps, as ``StagingRepository._stage_chunk`` or
``ConsumerLoop._process``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def long_functions(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_packages_or_services_is_over_60_lines():
    found = long_functions(ROOT / "packages") + long_functions(ROOT / "services")
    assert found == []


def test_the_check_sees_a_long_function(tmp_path: Path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert long_functions(tmp_path) == [f"long.py:1 long ({MAX_LINES + 1} lines)"]
