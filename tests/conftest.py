"""Fixtures every test package may use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real reference artifacts (../shared/data: trained models, a test photo)."""
    root = Path(os.environ.get("SERVEBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (root / "models").is_dir():
        pytest.skip(f"real reference artifacts not found at {root} (set SERVEBENCH_SHARED_DATA)")
    return root
