"""Fault injection per route: ``fake.inject(method, path_regex, fault, times=1)``.

Faults:

- ``"http500"`` (or ``500``): the service answers 500 in its own error shape; nothing changes.
- ``"hang"``: the request is held ``seconds`` (default ``Timing.hang_seconds``), longer than a
  client's deadline, then answered 500; stopping the fake releases it at once.
- ``"no_hosts"``: Blazar's own answer when a reservation cannot be satisfied: HTTP 500 with
  ``error_message`` "Not enough hosts available" (blazar.manager.exceptions.NotEnoughHostsAvailable
  has no code of its own, so BlazarException's 500 applies); python-blazarclient raises
  ``BlazarClientException("ERROR: Not enough hosts available", code=500)``.
- ``"error_state"``: the request succeeds, but the lease, server or container it creates (POST)
  or names (an id in the path) goes to ERROR / ERROR / Error instead of becoming active.
- ``"never_active"``: the request succeeds; the lease it creates or names stays PENDING.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

FAULTS = ("http500", "hang", "no_hosts", "error_state", "never_active")
_ALIASES = {500: "http500", "500": "http500"}


@dataclass
class Injection:
    method: str
    pattern: re.Pattern
    fault: str
    remaining: int | None  # None: every matching request
    seconds: float
    site: str | None = None
    hits: int = 0
    matched_paths: list[str] = field(default_factory=list)

    def apply(self, call, stopping) -> tuple[int, str, str] | None:
        """Apply to ``call``: an (status, message, name) error to answer now, or None to go on."""
        if self.fault == "http500":
            return 500, "The server has either erred or is incapable of performing the requested " \
                        "operation. (injected fault)", "InternalServerError"
        if self.fault == "no_hosts":
            return 500, "Not enough hosts available", "NotEnoughHostsAvailable"
        if self.fault == "hang":
            stopping.wait(self.seconds)
            return 500, f"Request timed out after {self.seconds:.0f} s (injected hang)", "Timeout"
        call.fates.append(self.fault)
        return None


class FaultBook:
    """Thread-safe set of pending injections; the first match takes one use."""

    def __init__(self, default_hang_seconds: float):
        self._lock = threading.Lock()
        self._items: list[Injection] = []
        self.default_hang_seconds = default_hang_seconds

    def add(self, method: str, path_regex: str, fault, times: int | None = 1,
            seconds: float | None = None, site: str | None = None) -> Injection:
        fault = _ALIASES.get(fault, fault)
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1, or None for every matching request")
        injection = Injection(
            method=method.upper(), pattern=re.compile(path_regex), fault=fault, remaining=times,
            seconds=self.default_hang_seconds if seconds is None else seconds, site=site,
        )
        with self._lock:
            self._items.append(injection)
        return injection

    def take(self, method: str, path: str, site: str) -> Injection | None:
        with self._lock:
            for injection in self._items:
                if injection.remaining == 0:
                    continue
                if injection.method not in (method, "*"):
                    continue
                if injection.site not in (None, site):
                    continue
                if not injection.pattern.search(path):
                    continue
                injection.hits += 1
                injection.matched_paths.append(path)
                if injection.remaining is not None:
                    injection.remaining -= 1
                return injection
        return None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    @property
    def injections(self) -> list[Injection]:
        with self._lock:
            return list(self._items)
