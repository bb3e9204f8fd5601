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

import contextlib
import os
import sys
from typing import Callable

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


@contextlib.contextmanager
def docker_backed(tmp_path, monkeypatch, ensure_image: Callable[[], str]):
    """A started fake whose Zun runs real containers of the image ``ensure_image()`` makes
    (tests/fakechi/dockerzun.py), python-chi pointed at it; stopped (its containers removed) and
    python-chi reset after. Skips where Docker or the image cannot be had, or not as root (the
    containers' sshd logs in root)."""
    from tests.support import docker

    from .dockerzun import DockerZun

    if os.geteuid() != 0:
        pytest.skip("the containers' sshd logs in root (and qemu/binfmt need root): run as root")
    try:
        image = ensure_image()
    except docker.DockerUnavailable as exc:
        pytest.skip(str(exc))
    # No --platform: docker 20.10 records an imported image as the daemon's architecture; an
    # arm64 image's binaries run through qemu's binfmt entry all the same.
    backing = DockerZun(docker.docker_cli(), image_for=lambda ref: image)
    with serving(FakeChameleon(root=tmp_path / "fakechi", docker_zun=backing), monkeypatch) as fake:
        yield fake


@contextlib.contextmanager
def serving(fake: FakeChameleon, monkeypatch: pytest.MonkeyPatch):
    """Start ``fake`` and point python-chi at it; after: stop it, reset python-chi, and fail on
    any bug the fake hit inside."""
    fake.start()
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


@pytest.fixture
def fake_chameleon(tmp_path, monkeypatch):
    """A running fake Chameleon with python-chi pointed at it (see ``FakeChameleon``)."""
    with serving(FakeChameleon(root=tmp_path / "fakechi"), monkeypatch) as fake:
        yield fake
