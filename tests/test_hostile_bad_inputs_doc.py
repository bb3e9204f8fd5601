"""docs/BAD_INPUTS.md stays true: each row names a test that exists and holds the row's quoted
words, and every hostile-input test (tests/*/test_hostile_*.py) has a row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "BAD_INPUTS.md"
TEST_REF = re.compile(r"^`(?P<file>tests/[\w/]+\.py)::(?P<name>\w+)(?:\[(?P<param>[\w-]+)\])?`$")


def rows() -> list[list[str]]:
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    assert cells[0] == ["input", "what it gets", "exit", "test"]
    return cells[1:]


def test_every_row_names_a_test_that_holds_its_words():
    table = rows()
    assert len(table) >= 20
    for _, gets, _, ref in table:
        match = TEST_REF.match(ref)
        assert match, f"not a test reference: {ref}"
        source = (REPO / match["file"]).read_text()
        functions = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
        assert match["name"] in functions, ref
        if match["param"]:
            assert f'"{match["param"]}"' in source, f"{ref}: no case {match['param']}"
        quoted = re.findall(r"`([^`]+)`", gets)
        assert quoted, f"{ref}: the row quotes nothing the test checks"
        assert quoted[0] in source, f"{ref}: the test does not check {quoted[0]!r}"


def test_every_hostile_test_has_a_row():
    documented = {TEST_REF.match(ref)["name"] for *_, ref in rows()}
    for path in sorted(REPO.glob("tests/*/test_hostile_*.py")):
        tree = ast.parse(path.read_text())
        tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
                 and n.name.startswith("test_")}
        missing = tests - documented
        assert not missing, f"{path.relative_to(REPO)}: {sorted(missing)} not in {DOC.name}"
