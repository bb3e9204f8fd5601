"""A fault at each create step in turn, and Ctrl-C / SIGTERM mid-wait: chi-up rolls back (or
chi-down cleans up after --keep), says what happened in one line, and the fake Chameleon holds
nothing of ours afterwards."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass

import pytest

from servebench.errors import Interrupted, ProvisionError, TerminatedError
from tests.provision.cli_fixtures import Cli, assert_no_secrets, cli  # noqa: F401


@dataclass(frozen=True)
class Fault:
    site: str
    method: str
    path: str
    fault: str
    expect: str                      # words the error line must contain
    args: tuple[str, ...] = ()
    seconds: float | None = None     # how long a "hang" holds the request
    signal: int | None = None        # sent once the fault is hit (interrupt cases)

    @property
    def label(self) -> str:
        extra = f" + {signal.Signals(self.signal).name}" if self.signal else ""
        return f"{self.site} {self.method} {self.path} {self.fault}{extra}"


LEASE, SERVER, CONTAINER = r"/leases$", r"/servers$", r"/containers$"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # not "detail", not a name
FAULTS = [
    # The lease.
    Fault("tacc", "POST", LEASE, "http500", "creating the lease"),
    Fault("tacc", "POST", LEASE, "no_hosts", "Not enough hosts available"),
    Fault("tacc", "POST", LEASE, "hang", "no answer from the testbed", ("--http-timeout", "1"), seconds=3),
    Fault("uc", "POST", LEASE, "error_state", "went ERROR instead of ACTIVE"),
    Fault("uc", "POST", LEASE, "never_active", "still PENDING after 1s", ("--wait-timeout", "1")),
    # The server.
    Fault("tacc", "POST", r"/os-keypairs$", "http500", "keypair"),
    Fault("tacc", "POST", SERVER, "http500", "creating the server"),
    Fault("uc", "POST", SERVER, "hang", "no answer from the testbed", ("--http-timeout", "1"), seconds=3),
    Fault("tacc", "POST", SERVER, "error_state", "went ERROR"),
    Fault("uc", "GET", rf"/servers/{UUID}$", "http500", "waiting for server"),
    # The floating IP.
    Fault("tacc", "POST", r"/floatingips$", "http500", "allocating a floating IP"),
    Fault("uc", "PUT", r"/floatingips/[^/]+$", "http500", "attaching floating IP"),
    # The edge container and its SSH bootstrap.
    Fault("edge", "POST", CONTAINER, "http500", "creating the container"),
    Fault("edge", "POST", CONTAINER, "error_state", "went Error"),
    Fault("edge", "POST", r"/containers/[^/]+/execute$", "http500", "bootstrapping SSH"),
    Fault("edge", "POST", r"/containers/[^/]+/put_archive$", "http500", "bootstrapping SSH"),
    Fault("edge", "PUT", r"/floatingips/[^/]+$", "http500", "attaching floating IP"),
    # Ctrl-C (SIGINT) and SIGTERM while waiting.
    Fault("tacc", "POST", LEASE, "never_active", "interrupted while waiting for the lease",
          signal=signal.SIGINT),
    Fault("uc", "GET", rf"/servers/{UUID}$", "hang", "interrupted while waiting for server",
          seconds=5, signal=signal.SIGINT),
    Fault("edge", "GET", rf"/containers/{UUID}$", "hang", "interrupted while waiting for container",
          seconds=5, signal=signal.SIGTERM),
]


def _signal_when_hit(injection, signum: int) -> threading.Thread:
    """Send ``signum`` to this process once the injected fault has been met (mid-wait)."""
    def watch():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not injection.hits:
            time.sleep(0.01)
        time.sleep(0.1)  # let the client block on it
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _assert_one_error_line(output: str, code: int, expected_code: int) -> str:
    assert code == expected_code, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and output.rstrip().endswith(errors[0]), output
    return errors[0]


@pytest.fixture
def ctrl_c_raises():
    """SIGINT as a terminal's Ctrl-C delivers it: a shell's ``cmd &`` (a CI job, nohup) starts
    Python with SIGINT ignored, and then the simulated Ctrl-C would never arrive."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_every_fault_is_rolled_back_and_nothing_leaks(cli: Cli, ctrl_c_raises):
    fake = cli.fake
    injected = 0
    for n, case in enumerate(FAULTS):
        name = f"serve_fault{n:02d}"
        injection = fake.inject(case.method, case.path, case.fault, times=1, seconds=case.seconds,
                                site={"tacc": "CHI@TACC", "uc": "CHI@UC", "edge": "CHI@Edge"}[case.site])
        watcher = _signal_when_hit(injection, case.signal) if case.signal else None
        result = cli.up(case.site, name, *case.args)
        if watcher:
            watcher.join(25)
        assert injection.hits == 1, f"{case.label}: the fault was never met\n{result.output}"
        injected += injection.hits
        line = _assert_one_error_line(
            result.output, result.exit_code,
            {signal.SIGINT: Interrupted.exit_code, signal.SIGTERM: TerminatedError.exit_code,
             None: ProvisionError.exit_code}[case.signal])
        assert case.expect in line, f"{case.label}: {line}"
        assert "rolled back" in line or "nothing was made" in line, f"{case.label}: {line}"
        assert "left:" not in line, f"{case.label}: {line}"
        assert not fake.leaked(), f"{case.label} leaked {fake.leaked()}"
        assert not cli.state_file(name).exists() and not cli.inventory(name).exists(), case.label
    assert_no_secrets(fake, cli)
    print(f"{injected} faults injected, 0 resources leaked")


def test_keep_leaves_everything_for_chi_down(cli: Cli):
    fake = cli.fake
    fake.inject("PUT", r"/floatingips/[^/]+$", "http500")
    result = cli.up("tacc", "serve_kept", "--keep")
    line = _assert_one_error_line(result.output, result.exit_code, ProvisionError.exit_code)
    assert "kept (--keep): lease serve_kept, server node-serve-kept, floating ip" in line
    assert {k for k, v in fake.leaked().items()} >= {"leases", "servers", "floating_ips"}
    down = cli.down()  # the only deployment here: no --name needed
    assert down.exit_code == 0, down.output
    assert "removed floating ip" in down.output and "verified: nothing" in down.output
    assert not fake.leaked(), fake.leaked()


def test_a_failed_delete_is_retried_until_it_goes(cli: Cli):
    fake = cli.fake
    assert cli.up("tacc", "serve_retry").exit_code == 0
    injection = fake.inject("DELETE", r"/leases/[^/]+$", "http500", times=2)
    down = cli.down()
    assert down.exit_code == 0, down.output
    assert injection.hits == 2 and "could not remove lease" in down.output
    assert not fake.leaked(), fake.leaked()


def test_a_delete_that_keeps_failing_is_reported_with_exit_5(cli: Cli):
    fake = cli.fake
    assert cli.up("tacc", "serve_stuck").exit_code == 0
    fake.inject("DELETE", r"/floatingips/[^/]+$", "http500", times=None)
    down = cli.down("--wait-timeout", "1")
    line = _assert_one_error_line(down.output, down.exit_code, 5)
    assert "left 1 resource(s)" in line and "floating ip" in line
    assert cli.state_file("serve_stuck").exists()  # still names what is left
    fake.faults.clear()
    assert cli.down().exit_code == 0
    assert not fake.leaked(), fake.leaked()
