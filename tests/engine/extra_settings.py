"""A throwaway setting added in one place (a field of a Settings subclass) and a variant that
records what its Context says of it (tests/engine/test_settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servebench_engine.settings import Settings, setting
from servebench_engine.variants.base import Served, Variant


@dataclass(frozen=True)
class WithProbe(Settings):
    probe_note: str | None = setting(None, "str", metavar="TEXT", knob="benchmark_probe_note",
                                     help="a note a test passes to every variant")


class ProbeReader(Variant):
    """Serves zeros and records the Context's ``probe_note`` and the process that read it."""

    id = "probe"
    description = "records ctx.probe_note"

    def load(self, ctx) -> Served:
        import os

        return Served(infer=lambda x: np.zeros((len(x), ctx.num_classes), np.float32),
                      model_path=None,
                      info={"probe_note": ctx.probe_note,
                            "probe_note_of_settings": ctx.settings.probe_note,
                            "read_in_pid": os.getpid()})
