"""INT8 variants: dynamic, and static with accuracy-aware tuning at two tolerances.

The static variants try two routes, in order, and record the one that made the served model:

1. Intel Neural Compressor (``quantization.fit``, static QOperator, absolute accuracy criterion)
   in its own environment (``ctx.quantizer_python``), run as a subprocess on
   ``quantize_inc.py``: its ONNX support needs numpy<2 and onnx 1.16 (docs/DESIGN.md).
2. ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel weights) driven by our own
   accuracy-aware loop: quantise everything; then keep the first and last weighted layers in
   fp32; then also keep the layers that quantisation hurts most (ranked once, by the
   signal-to-quantisation-noise ratio of their weights and input activations).

Whatever the route, the model is accepted only if the *current* onnxruntime, which serves it,
measures ``fp32 accuracy - int8 accuracy <= tolerance`` on the validation split, and only if at
least half of its weighted layers are INT8 (else it would be an fp32 model under an INT8 label).
If no trial within the profile's budget qualifies, the variant fails with
:class:`ToleranceNotMet` instead of serving a model that breaks its promise.

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

from .base import Served, Variant, VariantSkipped
from .helper_process import HelperFailed, absolute_python, run_relaying
from .quantize_common import (MIN_INT8_FRACTION, Budget, Job, RouteFailed, ToleranceNotMet,
                              TuningSet, budget_for, cpu_session, int8_layers, predict,
                              quantiser_input)
from .quantize_ort import _exclusion_schedule, ort_route  # noqa: F401  (tests reach the schedule here)

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

INC_SCRIPT = Path(__file__).with_name("quantize_inc.py")
INC_NOT_MET = 3            # quantize_inc.py's exit status when no trial met the tolerance

# --------------------------------------------------------------------------------------------
# Variants


class _Int8Variant(Variant):
    """Shared by the INT8 variants: prepare() makes the model in a scratch folder that is
    removed afterwards (only the served model stays in the workdir); load() serves it with the
    current onnxruntime on the CPU."""

    def __init__(self) -> None:
        self._served_path: Path | None = None
        self._info: dict[str, Any] = {}

    def prepare(self, ctx: "Context") -> None:
        if ctx.model_is_quantized:
            raise VariantSkipped("the given model is already quantised")
        budget = self._budget(ctx)
        tuning = TuningSet.from_context(ctx, budget)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=ctx.workdir, prefix=f".{self.id}-") as scratch:
            fp32 = quantiser_input(ctx.model_onnx, Path(scratch))
            job = Job(
                ctx=ctx, scratch=Path(scratch), budget=budget, tuning=tuning, fp32=fp32,
                fp32_pred=predict(cpu_session(fp32, ctx.threads), tuning.val_x),
                out=ctx.workdir / f"{self.id}.onnx",
                log=ctx.log,  # the engine already prefixes the variant id
            )
            self._info = self._quantise(job)
        self._served_path = job.out

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


class Int8Dynamic(_Int8Variant):
    id = "onnx-int8-dynamic"
    description = "dynamic INT8: weights quantised ahead of time, activations at run time"

    def _quantise(self, job: Job) -> dict[str, Any]:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic

        started = time.perf_counter()
        # ConvInteger, which dynamic quantisation makes of every Conv, has a CPU kernel for
        # uint8 weights only: QInt8 weights would not load on the CPU EP.
        quantize_dynamic(str(job.fp32), str(job.out), weight_type=QuantType.QUInt8, per_channel=False)
        return {
            "route": (
                f"onnxruntime.quantization {onnxruntime.__version__} quantize_dynamic, "
                "QUInt8 weights (ConvInteger)"
            ),
            "quantiser": "onnxruntime",
            "quantisation_s": round(time.perf_counter() - started, 3),
            **job.fidelity(job.out),
        }


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
        work = job.scratch / "neural-compressor"
        work.mkdir()
        data, result_path, candidate = work / "tuning.npz", work / "result.json", work / "int8.onnx"
        np.savez(data, calib=job.tuning.calib, val_x=job.tuning.val_x, val_y=job.tuning.val_y)
        # Its log outlives the scratch folder: the tuning history is worth keeping.
        log_path = job.out.with_name(f"{self.id}.neural-compressor.log")
        python = absolute_python(job.ctx.quantizer_python)
        command = [
            str(python), str(INC_SCRIPT),
            "--model", str(job.fp32), "--data", str(data),
            "--tolerance", repr(self.tolerance), "--max-trials", str(job.budget.max_trials),
            "--timeout", str(job.budget.timeout_s),
            "--out", str(candidate), "--result", str(result_path),
        ]  # fmt: skip
        job.log(f"tuning with neural-compressor (<= {job.budget.max_trials} trials), log: {log_path}")
        rc, last_line = run_relaying(command, work, log_path, job.budget.timeout_s + 120, job.log)
        if rc not in (0, INC_NOT_MET) or not result_path.exists():
            raise RouteFailed(f"quantize_inc.py exited {rc}: {last_line[-300:]}")
        result = json.loads(result_path.read_text())
        if rc == INC_NOT_MET:
            raise ToleranceNotMet(
                f"neural-compressor tried {result['trials']} configurations, none met the "
                f"tolerance (fp32 {result['fp32_accuracy']}, trials {result['trial_accuracies']})"
            )
        int8, total = int8_layers(candidate)
        if int8 < MIN_INT8_FRACTION * total:
            raise ToleranceNotMet(
                f"neural-compressor met the tolerance only by keeping {total - int8} of {total} "
                f"weighted layers in fp32 (fewer than {MIN_INT8_FRACTION:.0%} INT8)"
            )
        # Accept only what the serving onnxruntime confirms.
        fidelity = job.fidelity(candidate)
        if fidelity["accuracy_drop"] > self.tolerance + 1e-9:
            raise ToleranceNotMet(
                f"neural-compressor's model met the tolerance under onnxruntime "
                f"{result['onnxruntime']} but drops {fidelity['accuracy_drop']:.4f} under this one"
            )
        candidate.replace(job.out)
        return {
            "route": (
                f"neural-compressor {result['neural_compressor']} static QOperator, tuned in "
                f"{result['trials']} trial{'s' if result['trials'] != 1 else ''}"
            ),
            "quantiser": "neural-compressor",
            "trials": result["trials"],
            "quantiser_env": {k: result[k] for k in ("neural_compressor", "onnxruntime", "onnx")},
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
