"""pytest fixture ``fake_chameleon``: a started ``FakeChameleon`` that python-chi points at.

python-chi reads ``CHI_RESOURCE_API_URL`` (and ``EDGE_RESOURCE_API_URL``) once, when
``chi.context`` is first imported, into module globals of ``chi.context`` (``chi.hardware``
copies them at its own import);
``OS_*`` settings are read by ``chi.context.reset()``, which also runs at import. So the fixture
sets the environment, then sets those globals in both modules and calls ``chi.context.reset()`` (which also
forgets cached sites and sessions); teardown restores all three. Code under test that runs
in-process (a CliRunner) therefore sees the fake however early it imported chi; a subprocess
started with ``env=os.environ`` reads the same values at its own import.
"""

from __future__ import annotations

import os
import sys

import pytest

from .server import FakeChameleon


def point_chi_at(fake: FakeChameleon, monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> None:
    """Make python-chi in this process, and processes it starts, use ``fake`` (``env``: the
    credentials to use, ``fake.env`` by default)."""
    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    for key, value in (env or fake.env).items():
        monkeypatch.setenv(key, value)
    import chi.context

    # chi.hardware copies both URLs at its import; an unpatched copy would send a test's request
    # to the real testbed.
    urls = {"RESOURCE_API_URL": fake.url, "EDGE_RESOURCE_API_URL": fake.edge_devices_url}
    for module in filter(None, (chi.context, sys.modules.get("chi.hardware"))):
        for name, url in urls.items():
            monkeypatch.setattr(module, name, url)
    chi.context.reset()


@pytest.fixture
def fake_chameleon(tmp_path, monkeypatch):
    """A running fake Chameleon with python-chi pointed at it (see ``FakeChameleon``)."""
    fake = FakeChameleon(root=tmp_path / "fakechi").start()
    try:
        point_chi_at(fake, monkeypatch)
        yield fake
    finally:
        fake.stop()
        monkeypatch.undo()
        import chi.context

        chi.context.reset()
    if fake.internal_errors:
        pytest.fail("the fake Chameleon failed inside (a bug in tests/fakechi):\n"
                    + "\n".join(fake.internal_errors), pytrace=False)
