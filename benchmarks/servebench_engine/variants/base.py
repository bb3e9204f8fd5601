"""The contract between the engine and each variant.

A variant has two phases, timed differently:

* ``prepare(ctx)`` makes the artifacts the variant serves (an optimised graph, an INT8 model, a
  .tflite file). It is model preparation, not serving, so it is not part of the cold start.
* ``load(ctx)`` creates what serves requests (an ORT session, a compiled module) and returns a
  :class:`Served`. Load plus the first ``infer`` is the cold start.

Variants raise :class:`VariantSkipped` when their hardware or runtime is absent (no GPU, no
OpenVINO); any other exception becomes an error record and the suite goes on.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context


class VariantSkipped(Exception):
    """The variant cannot run on this host; the message says why (recorded as the reason)."""


class ProviderMismatch(RuntimeError):
    """A requested execution provider is not the one that ran: never report that as a number."""


@dataclass
class Served:
    """A loaded model ready to answer. ``infer`` takes NCHW float32 ImageNet-normalised images
    and returns logits [batch, classes]."""

    infer: Callable[[np.ndarray], np.ndarray]
    model_path: Path | None
    providers_requested: list[str] = field(default_factory=list)
    providers_active: list[str] = field(default_factory=list)
    # Largest batch the served model accepts (a fixed-shape .tflite takes 1); None: any.
    max_batch: int | None = None
    # Anything worth recording: EP options, quantisation route, optimisation level.
    info: dict[str, Any] = field(default_factory=dict)


class Variant(abc.ABC):
    id: str = ""
    description: str = ""
    # True when prepare() found what an earlier prepare (another repeat's process) made with
    # the same inputs, and serves that (variants/reuse.py).
    reused: bool = False
    # Roughly how long prepare() takes (MobileNetV2, 2 cores, measured) when it makes something
    # slow (quantising, converting). Nonzero: the suite runs it in a process of its own before
    # anything is timed, beside other such prepares, the longest first so that they finish
    # together (suite.prepare_ahead); every measuring process then reuses what it made.
    prepare_estimate_s: float = 0.0

    def prepare(self, ctx: "Context") -> None:  # noqa: B027 - optional hook
        """Make artifacts; default: nothing to make. Called again in a new process with the
        same ``ctx.workdir`` after a successful prepare, it must reuse them (no second
        quantisation, conversion or export) and give the same info and route."""

    @abc.abstractmethod
    def load(self, ctx: "Context") -> Served:
        """Create the serving session (timed as part of the cold start)."""
