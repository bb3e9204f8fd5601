"""The engine's load mode (issue 20): a served model under concurrent and Poisson load.

``run_load(factory, sample, settings)`` returns one JSON-able dict: the closed-loop
concurrency sweep and the layout it chose, the open-loop latency-throughput curve (latency
from each request's scheduled arrival), the knee under a p99 bound, and the generator's own
cost on a null model. Standard library and numpy only: no runtime is imported here; the caller
hands in a factory that opens sessions.
"""

from .run import planned_s, run_load
from .settings import LOAD_PROFILES, LoadSettings, for_profile

__all__ = ["LOAD_PROFILES", "LoadSettings", "for_profile", "planned_s", "run_load"]
