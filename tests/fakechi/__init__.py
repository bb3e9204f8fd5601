"""A fake Chameleon testbed on loopback for the real python-chi and OpenStack clients.

See ``server.py`` for the addresses it takes, ``faults.py`` for fault injection, ``state.py`` for
how resources move through their states, and ``fixtures.py`` for the pytest fixture.
"""

from .server import FakeChameleon
from .state import Timing

__all__ = ["FakeChameleon", "Timing"]
