"""Measurement profiles: how long to warm up, how much to measure, how many images to use.

A timed loop runs until BOTH its minimum count and its minimum duration are met (MLPerf
LoadGen's rule: enough samples for the tail percentiles *and* long enough to see periodic noise:
timers, frequency scaling, other tenants), and stops at whichever cap comes first.

* ``full``: the statistically sound settings. >= 1000 single-sample calls and >= 10 s, so p99 is
  backed by >= 10 samples above it and the median CI is tight; >= 100 batch calls and >= 10 s.
* ``quick``: a smoke-level look, two repeats of about 1-2 s of measuring each per variant, so
  ``make bench PROFILE=quick`` (12 CPU variants, torch.compile, quantisation, the .tflite
  conversion and onnx-cpu's load mode included, each repeat a fresh process) stays under 3
  minutes on 2 cores. Good for spotting 2x differences, not 5 % ones (the records carry the
  noise flag, the CI and whether the two repeats agreed).
* ``smoke``: a fraction of a second per variant, for tests and CI only; numbers meaningless.

``repeats``: how many fresh processes measure each variant (``bench-run --repeats`` overrides).
One process is one window: fresh processes on one machine differ by more than one loop's
confidence interval (issue 12 measured the same p50 at 5.1 and 10.4 ms ten minutes apart), so
``full`` runs three and says whether they agree (``repeats.replicable`` in the record).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopSpec:
    """One timed loop: warm-up, then measure until both minimums are met, bounded by the caps."""

    warmup_count: int
    warmup_s: float
    min_count: int
    min_s: float
    max_count: int
    max_s: float

    def __post_init__(self) -> None:
        if not (0 < self.min_count <= self.max_count and 0 <= self.min_s <= self.max_s):
            raise ValueError(f"inconsistent loop spec {self}")


@dataclass(frozen=True)
class Profile:
    name: str
    single: LoopSpec          # batch-1 latency
    batch: LoopSpec           # one sample = one batch of ``batch_size``
    batch_size: int
    # Images per class loaded for each split (evaluation: accuracy; validation: calibration and
    # accuracy-aware tuning). Caps keep memory bounded: one image is 602 KB as float32.
    images_per_class: int
    # Images per class in each split of the synthetic tree made when no data set is given.
    synthetic_per_class: int
    # Fresh processes per (model, variant), run interleaved: ABC ABC ABC.
    repeats: int = 1
    # Seconds the energy meter reads the idle node before each variant is loaded (at least the
    # meter's own shortest valid window).
    energy_idle_s: float = 0.0
    # The variants whose load mode (servebench_engine.load) runs in their first repeat, unless
    # --load-variants says otherwise: each one costs the load profile's time (quick ~40 s).
    load_variants: tuple[str, ...] = ()
    # The most top-1 accuracy (fraction, fp32 minus INT8, validation split) onnx-int8-dynamic
    # may lose; over it the variant is an error (ToleranceNotMet), as static INT8 is over its own.
    # 0.05: the aggressive static variant's budget, since dynamic has no tuning loop to do better.
    int8_dynamic_tolerance: float = 0.05
    # The most top-1 accuracy (fraction, float .tflite minus INT8 .tflite, both run in LiteRT on
    # the evaluation split) tflite-int8 may lose; over it the variant is an error
    # (ToleranceNotMet). 0.05: the aggressive static INT8 budget, since ai-edge-quantizer's
    # recipe has no tuning loop either.
    tflite_int8_tolerance: float = 0.05

    def __post_init__(self) -> None:
        # A profile read back from a worker's JSON job has a list here.
        object.__setattr__(self, "load_variants", tuple(self.load_variants))


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        # Half of what one process had before repeats: two repeats measure as long in all.
        single=LoopSpec(warmup_count=10, warmup_s=0.1, min_count=100, min_s=0.5,
                        max_count=20_000, max_s=1.0),
        # One warm-up batch: the slowest variants' batch (torch-eager: 0.5 s) is what one buys.
        batch=LoopSpec(warmup_count=1, warmup_s=0.0, min_count=5, min_s=0.3,
                       max_count=1_000, max_s=1.0),
        batch_size=32,
        images_per_class=16,
        # 44 images a split: accuracy on the synthetic tree means nothing, and each image is a
        # pass in every variant's accuracy, INC's every trial and tflite-int8's gate (8 a class
        # made the quick run 3 min 4 s here; see README "Serving under load").
        synthetic_per_class=4,
        repeats=2,
        energy_idle_s=1.0,
        # One variant: its ~40 s keep `make bench PROFILE=quick` near 3 minutes.
        load_variants=("onnx-cpu",),
    ),
    "full": Profile(
        name="full",
        single=LoopSpec(warmup_count=50, warmup_s=2.0, min_count=1_000, min_s=10.0,
                        max_count=1_000_000, max_s=120.0),
        batch=LoopSpec(warmup_count=5, warmup_s=1.0, min_count=100, min_s=10.0,
                       max_count=100_000, max_s=180.0),
        batch_size=32,
        # 1,100 images per split: 0.66 GB each in float32, which a Raspberry Pi still holds
        # next to the runtimes; accuracy then has a standard error of about 1.2 points.
        images_per_class=100,
        synthetic_per_class=8,
        repeats=3,
        energy_idle_s=5.0,
        load_variants=("onnx-cpu", "onnx-int8-static-aggressive",
                       "onnx-int8-static-conservative"),
    ),
    "smoke": Profile(
        name="smoke",
        single=LoopSpec(warmup_count=2, warmup_s=0.0, min_count=10, min_s=0.05,
                        max_count=1_000, max_s=0.3),
        batch=LoopSpec(warmup_count=1, warmup_s=0.0, min_count=2, min_s=0.0,
                       max_count=100, max_s=0.5),
        batch_size=32,
        images_per_class=2,
        synthetic_per_class=2,
        repeats=1,
    ),
}
