from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from servebench.report.cli import main


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: to prove an error wrote nothing."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def report():
    """Run the real `bench-report` entry point in-process; returns click's Result."""
    runner = CliRunner()

    def invoke(*args: str | Path):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke
