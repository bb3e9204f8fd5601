"""The load mode of one variant in its measuring child (issue 20): which variants run it, with
which load profile and bound, and the factory that serves the variant again with given threads.

The load package (servebench_engine.load) knows no runtime: it asks ``factory(threads)`` for one
more batch-1 ``infer``. Here that is the variant's own ``load(ctx)`` with ``ctx.threads`` set,
so every runtime's sessions are opened the way its timed loops' session was (providers, graph
optimisation, the served INT8 file), only with the thread count the layout sweep tries.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from . import load
from .context import Context
from .record import one_line
from .variants import resolve_selection
from .variants.base import Variant

NONE = "none"


def selected(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The ids ``--load-variants`` names: None is the profile's ``default``, ``none`` none.
    Raises ValueError naming unknown ids."""
    if text is None:
        return tuple(default)
    if text.strip().lower() == NONE:
        return ()
    return tuple(resolve_selection(text))


def load_profile(profile: str, host_kind: str) -> str:
    """The load profile follows the engine's, except that an edge host (a few requests/s) gets
    the edge one: longer windows and a 200 ms bound (smoke stays smoke: tests)."""
    return "edge" if host_kind == "edge" and profile != "smoke" else profile


def wanted(variant_id: str, ctx: Context) -> bool:
    return variant_id in selected(ctx.settings.load_variants, ctx.profile.load_variants)


def measure_load(variant: Variant, ctx: Context, say: Callable[[str], None]) -> dict:
    """``run_load``'s dict for ``variant`` plus ``load_profile`` and ``bound_ms``; only ``knee``
    (None) and ``reason`` beside them when it cannot be served so (loaded again, at batch 1)."""
    name = load_profile(ctx.profile.name, ctx.settings.host_kind)
    bound = ctx.settings.load_bound_ms
    settings = load.for_profile(name, **({"p99_bound_ms": bound} if bound else {}))
    head = {"load_profile": name, "bound_ms": settings.p99_bound_ms}

    def factory(threads: int):
        return variant.load(dataclasses.replace(ctx, threads=threads)).infer

    try:
        # --threads caps the CPUs the layouts split between sessions, as it caps every runtime.
        result = load.run_load(factory, ctx.sample(1), settings, cpus=ctx.settings.threads,
                               progress=lambda msg: say(f"load: {msg}"))
    except Exception as exc:  # noqa: BLE001 - the timed figures stand; load says why it has none
        return {**head, "knee": None, "reason": f"not served under load: {one_line(exc)}"}
    return {**head, **result}
