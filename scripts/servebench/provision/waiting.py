"""Our own polling loop: every wait has a deadline we choose and shows progress.

python-chi's waits poll every 5 s and some have no timeout we can set, so nothing here calls
them. The poll interval comes from ``SERVEBENCH_POLL_INTERVAL`` (seconds, default 5) so that
tests against the fake Chameleon run fast.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from servebench.errors import ProvisionError, UsageError

DEFAULT_INTERVAL_S = 5.0
# A progress line at least this often while a state does not change.
_HEARTBEAT_S = 30.0


def poll_interval() -> float:
    raw = os.environ.get("SERVEBENCH_POLL_INTERVAL")
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not 0 < value <= 300:
        raise UsageError(f"SERVEBENCH_POLL_INTERVAL={raw!r} must be seconds between 0 and 300")
    return value


def wait_for(what: str, probe: Callable[[], tuple[bool, str]], timeout_s: float,
             say: Callable[[str], None], hint: str = "") -> str:
    """Call ``probe`` until it returns ``(True, state)``; raise ProvisionError at the deadline.

    ``probe`` returns ``(done, state)`` and raises (a ServebenchError) when the state can never
    become the one we wait for (ERROR). Returns the final state.
    """
    interval = poll_interval()
    start = time.monotonic()
    deadline = start + timeout_s
    last_state, last_said = None, start
    while True:
        done, state = probe()
        now = time.monotonic()
        if done:
            if last_state is not None:
                say(f"  {what}: {state} after {now - start:.0f}s")
            return state
        if state != last_state or now - last_said >= _HEARTBEAT_S:
            say(f"  {what}: {state} ({now - start:.0f}s of {timeout_s:.0f}s)")
            last_state, last_said = state, now
        if now + interval > deadline:
            raise ProvisionError(
                f"{what} still {state} after {timeout_s:.0f}s",
                hint=hint or "raise --wait-timeout or check the site's status page",
            )
        time.sleep(interval)
