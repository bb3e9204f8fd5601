"""INT8 variants: dynamic, and static with accuracy-aware tuning at two tolerances.

Both kinds try Intel Neural Compressor first, in its own environment (``ctx.quantizer_python``,
a subprocess on ``quantize_inc.py``: its ONNX support needs numpy<2 and onnx 1.16,
docs/DESIGN.md), with the tutorial's settings (seed 002: ``quant_level`` 1, the recipe
``graph_optimization_level: ENABLE_EXTENDED``, QOperator, a calibration sampling size of 128
where the profile has the images), recorded in ``quantiser_settings`` and the route. Dynamic
falls back to ``onnxruntime.quantization.quantize_dynamic``. The static variants try two routes,
in order, and record the one that made the served model:

1. Neural Compressor (``quantization.fit``, static QOperator, absolute accuracy criterion).
2. ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel weights) driven by our own
   accuracy-aware loop: quantise everything; then keep the first and last weighted layers in
   fp32; then also keep the layers that quantisation hurts most (ranked once, by the
   signal-to-quantisation-noise ratio of their weights and input activations).

Whatever the route, the model is accepted only if the *current* onnxruntime, which serves it,
measures ``fp32 accuracy - int8 accuracy <= tolerance`` on the validation split, and only if at
least half of its weighted layers are INT8 (else it would be an fp32 model under an INT8 label).
If no trial within the profile's budget qualifies, the variant fails with
:class:`ToleranceNotMet` instead of serving a model that breaks its promise.

A model given already INT8 is served as given by every INT8 variant (route ``given (already
INT8, <kind>)``), never quantised again; with no fp32 model beside it, no tolerance is checked.

The accuracy is top-1 against the validation labels, as the variants' definitions say. On
synthetic data with random weights those labels carry no signal (accuracy sits near chance), so
the check then only exercises the mechanics; every result also records the top-1 agreement with
the fp32 model, which does measure what quantisation changed.
"""

from __future__ import annotations

import abc
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..helpers import QUANTIZE_INC as INC_SCRIPT
from . import reuse
from .base import Served, Variant
from .helper_process import HelperFailed, absolute_python, run_relaying
from .quantize_common import (
    Budget,
    Job,
    RouteFailed,
    ToleranceNotMet,
    TuningSet,
    budget_for,
    cpu_session,
    gate,
    int8_layers,
    predict,
    quantiser_input,
)
from .quantize_ort import _exclusion_schedule, ort_route  # noqa: F401  (tests reach the schedule here)

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

INC_NOT_MET = 3            # quantize_inc.py's exit status when no trial met the tolerance
# The tutorial's Neural Compressor settings (seed 002), passed to quantize_inc.py and recorded.
INC_QUANT_LEVEL = "1"
INC_GRAPH_OPTIMIZATION = "ENABLE_EXTENDED"
DYNAMIC_OPS = {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}

# --------------------------------------------------------------------------------------------
# Variants


def quantisation_kind(model: Path) -> str:
    """How a given INT8 model was quantised: dynamic, static QOperator or static QDQ."""
    import onnx

    ops = {n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node}
    if ops & DYNAMIC_OPS:
        return "dynamic"
    return "static QOperator" if any(o.startswith("QLinear") for o in ops) else "static QDQ"


class _Int8Variant(Variant):
    """Shared by the INT8 variants: prepare() makes the model in a scratch folder that is
    removed afterwards (only the served model and its manifest stay in the workdir), or finds
    the one an earlier prepare made from the same inputs (variants/reuse.py); load() serves it
    with the current onnxruntime on the CPU. A model given already INT8 is served as given."""

    kind = "static"
    prepare_estimate_s = 13.0  # Neural Compressor static: 11-16 s here

    def __init__(self) -> None:
        self._served_path: Path | None = None
        self._info: dict[str, Any] = {}

    def prepare(self, ctx: "Context") -> None:
        if ctx.model_is_quantized:
            self._served_path, self._info = ctx.model_onnx, self._given(ctx)
            return
        budget = self._budget(ctx)
        tuning = TuningSet.from_context(ctx, budget)
        out = ctx.workdir / f"{self.id}.onnx"
        key = reuse.source_key(self.id, ctx.model_onnx, **self._settings(ctx, budget),
                               data=tuning.fingerprint())
        info = reuse.reusable(out, key)
        self.reused = info is not None
        if info is not None:
            ctx.log(f"reusing {out.name}, made by an earlier prepare from the same inputs")
        else:
            reuse.forget(out)
            info = reuse.remember(out, key, self._make(ctx, budget, tuning, out))
        self._served_path, self._info = out, info

    def _make(self, ctx: "Context", budget: Budget, tuning: TuningSet, out: Path) -> dict[str, Any]:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=ctx.workdir, prefix=f".{self.id}-") as scratch:
            fp32 = quantiser_input(ctx.model_onnx, Path(scratch))
            job = Job(
                ctx=ctx, scratch=Path(scratch), budget=budget, tuning=tuning, fp32=fp32,
                fp32_pred=predict(cpu_session(fp32, ctx.threads), tuning.val_x),
                out=out,
                log=ctx.log,  # the engine already prefixes the variant id
            )
            return self._quantise(job)

    def _given(self, ctx: "Context") -> dict[str, Any]:
        """A given INT8 model: quantising it again would measure a twice-rounded model, so it
        is served as it came; no fp32 model is there to check a tolerance against."""
        kind = quantisation_kind(ctx.model_onnx)
        int8, weighted = int8_layers(ctx.model_onnx)
        return {
            "route": f"given (already INT8, {kind}): served as given, not re-quantised",
            "quantiser": "given",
            "given_quantisation": kind,
            "kind_matches_variant": kind.split()[0] == self.kind,
            "int8_layers": int8,
            "weighted_layers": weighted,
            "tolerance_checked": False,
        }

    def _settings(self, ctx: "Context", budget: Budget) -> dict[str, Any]:
        """What the made model depends on besides the source model and the data."""
        import onnxruntime

        return {"budget": [budget.calibration_images, budget.max_trials, budget.timeout_s],
                "neural_compressor": bool(ctx.quantizer_python),
                "onnxruntime": onnxruntime.__version__}

    def _budget(self, ctx: "Context") -> Budget:
        return budget_for(ctx.profile)

    @abc.abstractmethod
    def _quantise(self, job: Job) -> dict[str, Any]:
        """Write ``job.out``; return what the record should say about it (``route`` first)."""

    def load(self, ctx: "Context") -> Served:
        if self._served_path is None:
            raise RuntimeError(f"{self.id}: load() before prepare() made the INT8 model")
        from .onnx_runtime import CPU, served_from

        session = cpu_session(self._served_path, ctx.threads)
        return served_from(session, self._served_path, [CPU], dict(self._info))


def run_inc(job: Job, variant_id: str, approach: str, extra: list[str]) -> tuple[int, dict, Path]:
    """quantize_inc.py in the quantiser's environment: (exit status, its result, the model)."""
    work = job.scratch / f"neural-compressor-{approach}"
    work.mkdir()
    data, result_path, candidate = work / "tuning.npz", work / "result.json", work / "int8.onnx"
    np.savez(data, calib=job.tuning.calib, val_x=job.tuning.val_x, val_y=job.tuning.val_y)
    # Its log outlives the scratch folder: the tuning history is worth keeping.
    log_path = job.out.with_name(f"{variant_id}.neural-compressor.log")
    command = [
        str(absolute_python(job.ctx.quantizer_python)), str(INC_SCRIPT),
        "--model", str(job.fp32), "--data", str(data), "--approach", approach,
        "--quant-level", INC_QUANT_LEVEL, "--graph-optimization-level", INC_GRAPH_OPTIMIZATION,
        "--calibration-sampling-size", str(job.budget.calibration_images),
        "--max-trials", str(job.budget.max_trials), "--timeout", str(job.budget.timeout_s),
        "--out", str(candidate), "--result", str(result_path), *extra,
    ]  # fmt: skip
    job.log(f"neural-compressor {approach} quantisation, log: {log_path}")
    rc, last_line = run_relaying(command, work, log_path, job.budget.timeout_s + 120, job.log)
    if rc not in (0, INC_NOT_MET) or not result_path.exists():
        raise RouteFailed(f"quantize_inc.py exited {rc}: {last_line[-300:]}")
    return rc, json.loads(result_path.read_text()), candidate


def inc_fields(result: dict) -> dict[str, Any]:
    """What the record says about a Neural Compressor run: its settings and environment."""
    return {
        "quantiser": "neural-compressor",
        "quantiser_settings": result["settings"],
        "quantiser_env": {k: result[k] for k in ("neural_compressor", "onnxruntime", "onnx")},
    }


class Int8Dynamic(_Int8Variant):
    """Dynamic INT8 passes the same gate as static INT8 (quantize_common.gate: the INT8 fraction
    and the validation accuracy drop) at the profile's ``int8_dynamic_tolerance``; a route whose
    model fails it gives way to the next, and with none left the variant fails ToleranceNotMet."""

    id = "onnx-int8-dynamic"
    description = ("dynamic INT8: weights quantised ahead of time, activations at run time "
                   "(Neural Compressor where its environment is, else onnxruntime)")
    kind = "dynamic"
    prepare_estimate_s = 10.0  # Neural Compressor dynamic: 9-11 s here

    def _settings(self, ctx: "Context", budget: Budget) -> dict[str, Any]:
        return {**super()._settings(ctx, budget), "tolerance": ctx.profile.int8_dynamic_tolerance}

    def _quantise(self, job: Job) -> dict[str, Any]:
        tolerance = job.ctx.profile.int8_dynamic_tolerance
        not_taken: list[str] = []
        routes: list[tuple[str, Callable[[Job, float], tuple[dict[str, Any], Path]]]] = []
        if job.ctx.quantizer_python:
            routes.append(("neural-compressor", self._inc))
        else:
            not_taken.append("neural-compressor: no quantiser environment (quantizer_python unset)")
        routes.append(("onnxruntime", self._ort))
        missed_tolerance = False
        for name, route in routes:
            started = time.perf_counter()
            try:
                info, candidate = route(job, tolerance)
                fidelity = gate(job, candidate, tolerance, name)
            except (RouteFailed, HelperFailed, ToleranceNotMet) as exc:
                missed_tolerance |= isinstance(exc, ToleranceNotMet)
                not_taken.append(f"{name}: {exc}")
                job.log(f"{name} route gave no model: {exc}")
                continue
            candidate.replace(job.out)
            return {**info, "quantisation_s": round(time.perf_counter() - started, 3),
                    "tolerance": tolerance,
                    "tolerance_metric": "top-1 accuracy drop vs fp32 on the validation labels",
                    "routes_not_taken": not_taken, **fidelity}
        if not missed_tolerance:
            raise RuntimeError("no quantisation route could run: " + "; ".join(not_taken))
        raise ToleranceNotMet(
            f"no dynamic INT8 model kept the validation accuracy drop <= {tolerance}: "
            + "; ".join(not_taken))

    def _inc(self, job: Job, tolerance: float) -> tuple[dict[str, Any], Path]:
        rc, result, candidate = run_inc(job, self.id, "dynamic", ["--tolerance", repr(tolerance)])
        if rc != 0 or not candidate.is_file():
            raise RouteFailed(f"quantize_inc.py (dynamic) exited {rc} without a model")
        return {
            "route": (f"neural-compressor {result['neural_compressor']} dynamic QOperator, "
                      f"quant_level {result['settings']['quant_level']}"),
            **inc_fields(result),
        }, candidate

    def _ort(self, job: Job, tolerance: float) -> tuple[dict[str, Any], Path]:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic

        candidate = job.scratch / "dynamic-int8.onnx"
        # ConvInteger, which dynamic quantisation makes of every Conv, has a CPU kernel for
        # uint8 weights only: QInt8 weights would not load on the CPU EP.
        quantize_dynamic(str(job.fp32), str(candidate), weight_type=QuantType.QUInt8,
                         per_channel=False)
        return {
            "route": (
                f"onnxruntime.quantization {onnxruntime.__version__} quantize_dynamic, "
                "QUInt8 weights (ConvInteger)"
            ),
            "quantiser": "onnxruntime",
        }, candidate


class _StaticInt8(_Int8Variant):
    tolerance: float = 0.0

    def __init__(self, tolerance: float | None = None, max_trials: int | None = None) -> None:
        super().__init__()
        if tolerance is not None:
            self.tolerance = tolerance
        if not 0.0 <= self.tolerance < 1.0:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        self._max_trials = max_trials

    def _budget(self, ctx: "Context") -> Budget:
        budget = budget_for(ctx.profile)
        if self._max_trials is None:
            return budget
        return Budget(budget.calibration_images, self._max_trials, budget.timeout_s)

    def _settings(self, ctx: "Context", budget: Budget) -> dict[str, Any]:
        return {**super()._settings(ctx, budget), "tolerance": self.tolerance}

    def _quantise(self, job: Job) -> dict[str, Any]:
        attempts: list[str] = []
        routes: list[tuple[str, Callable[[Job], dict[str, Any]]]] = []
        if job.ctx.quantizer_python:
            routes.append(("neural-compressor", self._inc))
        else:
            attempts.append("neural-compressor: no quantiser environment (quantizer_python unset)")
        routes.append(("onnxruntime", self._ort))

        missed_tolerance = False
        for name, route in routes:
            started = time.perf_counter()
            try:
                info = route(job)
            except (RouteFailed, HelperFailed, ToleranceNotMet) as exc:
                missed_tolerance |= isinstance(exc, ToleranceNotMet)
                attempts.append(f"{name}: {exc}")
                job.log(f"{name} route gave no model: {exc}")
                continue
            info.update(
                tuning_s=round(time.perf_counter() - started, 3),
                tolerance=self.tolerance,
                tolerance_metric="top-1 accuracy drop vs fp32 on the validation labels",
                calibration_images=len(job.tuning.calib),
                routes_not_taken=attempts,
            )
            job.log(f"{info['route']} ({info['tuning_s']:.1f} s)")
            return info
        if not missed_tolerance:
            raise RuntimeError("no quantisation route could run: " + "; ".join(attempts))
        raise ToleranceNotMet(
            f"no INT8 model kept the validation accuracy drop <= {self.tolerance}: "
            + "; ".join(attempts)
        )

    # -- route 1: Neural Compressor in its own environment -------------------------------------

    def _inc(self, job: Job) -> dict[str, Any]:
        job.log(f"tuning with neural-compressor (<= {job.budget.max_trials} trials)")
        rc, result, candidate = run_inc(job, self.id, "static", ["--tolerance", repr(self.tolerance)])
        if rc == INC_NOT_MET:
            raise ToleranceNotMet(
                f"neural-compressor tried {result['trials']} configurations, none met the "
                f"tolerance (fp32 {result['fp32_accuracy']}, trials {result['trial_accuracies']})"
            )
        # Accept only what the serving onnxruntime confirms.
        fidelity = gate(job, candidate, self.tolerance, "neural-compressor")
        candidate.replace(job.out)
        settings = result["settings"]
        return {
            "route": (
                f"neural-compressor {result['neural_compressor']} static QOperator, "
                f"quant_level {settings['quant_level']}, graph_optimization_level "
                f"{settings['recipes']['graph_optimization_level']}, calibration sampling size "
                f"{settings['calibration_sampling_size']}, tuned in "
                f"{result['trials']} trial{'s' if result['trials'] != 1 else ''}"
            ),
            **inc_fields(result),
            "trials": result["trials"],
            "quantiser_fp32_accuracy": result["fp32_accuracy"],
            "quantiser_trial_accuracies": result["trial_accuracies"],
            **fidelity,
        }

    def _ort(self, job: Job) -> dict[str, Any]:
        return ort_route(job, self.tolerance)


class Int8StaticAggressive(_StaticInt8):
    id = "onnx-int8-static-aggressive"
    description = "static INT8, accuracy-aware tuning, validation accuracy drop <= 0.05"
    tolerance = 0.05


class Int8StaticConservative(_StaticInt8):
    id = "onnx-int8-static-conservative"
    description = "static INT8, accuracy-aware tuning, validation accuracy drop <= 0.01"
    tolerance = 0.01
