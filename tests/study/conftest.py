"""Fixtures for the study tests: the fake Chameleon (tests/fakechi)."""

from tests.fakechi.fixtures import fake_chameleon  # noqa: F401  (a fixture, found by name)
