"""The README's configuration table stays true: it lists every variable the code reads, with the
default the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from lake.settings import OTHER_ENV, settings_env

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_lists_every_variable_with_its_default():
    rows = dict(re.findall(r"^\| `(LAKE_[A-Z0-9_]+)` \|\s*`?([^|`]*?)`?\s*\|", README, re.M))
    expected = {name: default for name, (default, _) in {**settings_env(), **OTHER_ENV}.items()}
    assert rows == expected


def test_the_readme_starts_with_the_two_commands():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
