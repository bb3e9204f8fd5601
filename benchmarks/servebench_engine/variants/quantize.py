"""INT8 variants: dynamic, and static with accuracy-aware tuning at two tolerances.

The static variants try two routes, in order, and record the one that made the served model:

1. Intel Neural Compressor (``quantization.fit``, static QOperator, absolute accuracy criterion)
   in its own environment (``ctx.quantizer_python``), run as a subprocess on
   ``quantize_inc.py``: its ONNX support needs numpy<2 and onnx 1.16 (DESIGN.md).
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
import itertools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .base import Served, Variant, VariantSkipped
from .helper_process import HelperFailed, absolute_python, run_relaying

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

INC_SCRIPT = Path(__file__).with_name("quantize_inc.py")
INC_NOT_MET = 3            # quantize_inc.py's exit status when no trial met the tolerance
INC_MAX_IR_VERSION = 10    # onnx 1.16 / onnxruntime 1.19 in the quantiser's environment
INC_MAX_OPSET = 21
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger")
# An "INT8 model" that keeps most layers in fp32 measures fp32 speed under an INT8 label:
# Neural Compressor's tuning, for one, meets a tight tolerance by falling back every Conv.
MIN_INT8_FRACTION = 0.5


@dataclass(frozen=True)
class Budget:
    """How much tuning a profile affords. Quick must keep the whole suite under 3 min on 2 cores."""

    calibration_images: int
    max_trials: int
    timeout_s: int


BUDGETS = {
    "smoke": Budget(calibration_images=8, max_trials=2, timeout_s=60),
    "quick": Budget(calibration_images=16, max_trials=3, timeout_s=90),
    "full": Budget(calibration_images=100, max_trials=8, timeout_s=900),
}


class ToleranceNotMet(RuntimeError):
    """No INT8 model within the tuning budget kept the accuracy drop within the tolerance."""


class _RouteFailed(Exception):
    """The route could not run at all (not installed, crashed); the next route is tried."""


def budget_for(profile: Any) -> Budget:
    name = getattr(profile, "name", profile)
    return BUDGETS.get(str(name), BUDGETS["quick"])


# --------------------------------------------------------------------------------------------
# Data and evaluation with the serving onnxruntime


@dataclass(frozen=True)
class TuningSet:
    calib: np.ndarray           # calibration images (first images of the validation split)
    val_x: np.ndarray
    val_y: np.ndarray

    @classmethod
    def from_context(cls, ctx: "Context", budget: Budget) -> "TuningSet":
        split = ctx.splits["validation"]
        if len(split.images) == 0:
            raise RuntimeError("the validation split is empty: nothing to calibrate or tune on")
        n = min(budget.calibration_images, len(split.images))
        return cls(
            calib=np.ascontiguousarray(split.images[:n], dtype=np.float32),
            val_x=np.ascontiguousarray(split.images, dtype=np.float32),
            val_y=np.asarray(split.labels, dtype=np.int64),
        )


def cpu_session(model: Path | str, threads: int | None):
    """An onnxruntime session on the CPU EP (ORT's default optimisation), behind the EP guard."""
    from .onnx_runtime import CPU, open_session, session_options

    return open_session(Path(model), [CPU], session_options("all", threads))


def predict(session, images: np.ndarray, batch: int = 16) -> np.ndarray:
    name = session.get_inputs()[0].name
    out = [session.run(None, {name: images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(out).argmax(axis=1)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean())


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over an array (batches of up to 8)."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 8):
        self._feeds = [{input_name: images[i : i + batch]} for i in range(0, len(images), batch)]
        self.rewind()

    def get_next(self):
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)

    def __iter__(self):  # qdq_loss_debug iterates readers directly
        self.rewind()
        return iter(self._feeds)


def _input_name(model_path: Path) -> str:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def quantiser_input(model: Path, scratch: Path) -> Path:
    """The fp32 model as the quantisers want it: one file (external data inlined), shapes
    inferred, Conv+BatchNorm folded, and an IR version the quantiser's older onnx reads."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    staged, target = scratch / "preprocessed.onnx", scratch / "fp32.onnx"
    quant_pre_process(str(model), str(staged), skip_symbolic_shape=True)
    proto = onnx.load(str(staged))
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset <= INC_MAX_OPSET:
        # The IR version only names the file format generation; opset <= 21 fits IR 10.
        proto.ir_version = min(proto.ir_version, INC_MAX_IR_VERSION)
    onnx.save(proto, str(target))
    return target


@dataclass
class _Job:
    """One quantisation: what every route needs. Scratch files live and die with ``scratch``."""

    ctx: "Context"
    scratch: Path
    budget: Budget
    tuning: TuningSet
    fp32: Path
    fp32_pred: np.ndarray       # the fp32 model's top-1 on the validation images
    out: Path                   # where the served INT8 model goes
    log: Callable[[str], None]

    def fidelity(self, model: Path) -> dict[str, Any]:
        """INT8 against fp32 on the validation split, as the serving onnxruntime measures it."""
        int8 = predict(cpu_session(model, self.ctx.threads), self.tuning.val_x)
        int8_count, weighted_count = int8_layers(model)
        fp32_acc, int8_acc = accuracy(self.fp32_pred, self.tuning.val_y), accuracy(int8, self.tuning.val_y)
        return {
            "int8_layers": int8_count,
            "weighted_layers": weighted_count,
            "fp32_accuracy": fp32_acc,
            "int8_accuracy": int8_acc,
            "accuracy_drop": fp32_acc - int8_acc,
            "top1_agreement_with_fp32": accuracy(int8, self.fp32_pred),
            "validation_images": len(self.tuning.val_x),
        }


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
            job = _Job(
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
    def _quantise(self, job: _Job) -> dict[str, Any]:
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

    def _quantise(self, job: _Job) -> dict[str, Any]:
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

    def _quantise(self, job: _Job) -> dict[str, Any]:
        attempts: list[str] = []
        routes: list[tuple[str, Callable[[_Job], dict[str, Any]]]] = []
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
            except (_RouteFailed, HelperFailed, ToleranceNotMet) as exc:
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

    def _inc(self, job: _Job) -> dict[str, Any]:
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
            raise _RouteFailed(f"quantize_inc.py exited {rc}: {last_line[-300:]}")
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

    # -- route 2: onnxruntime.quantization with our own accuracy-aware loop --------------------

    def _ort(self, job: _Job) -> dict[str, Any]:
        import onnxruntime

        fp32_acc = accuracy(job.fp32_pred, job.tuning.val_y)
        input_name = _input_name(job.fp32)
        weighted = _weighted_nodes(job.fp32)
        trials = [job.scratch / f"trial-{t}.onnx" for t in range(1, job.budget.max_trials + 1)]
        schedule = _exclusion_schedule(
            weighted,
            lambda: _rank_by_sensitivity(job.fp32, trials[0], job.tuning.calib, input_name),
            max_excluded=int(len(weighted) * (1 - MIN_INT8_FRACTION)),
        )
        history: list[dict[str, Any]] = []
        for trial, excluded in enumerate(itertools.islice(schedule, job.budget.max_trials), 1):
            candidate = trials[trial - 1]
            _quantize_qdq(job.fp32, candidate, input_name, job.tuning.calib, excluded)
            acc = accuracy(predict(cpu_session(candidate, job.ctx.threads), job.tuning.val_x), job.tuning.val_y)
            drop = fp32_acc - acc
            history.append({"trial": trial, "fp32_layers": len(excluded), "accuracy": acc, "drop": drop})
            job.log(f"onnxruntime trial {trial}/{job.budget.max_trials}: {len(excluded)} layers kept "
                    f"fp32, validation accuracy drop {drop:+.4f} (tolerance {self.tolerance})")
            if drop <= self.tolerance + 1e-9:
                candidate.replace(job.out)
                return {
                    "route": (
                        f"onnxruntime.quantization {onnxruntime.__version__} quantize_static "
                        f"QDQ per-channel, accuracy-aware loop: {trial} "
                        f"trial{'s' if trial != 1 else ''}, {len(excluded)} layers kept fp32"
                    ),
                    "quantiser": "onnxruntime",
                    "trials": trial,
                    "fp32_layers": excluded,
                    "trial_history": history,
                    **job.fidelity(job.out),
                }
        best = min(history, key=lambda h: h["drop"])
        raise ToleranceNotMet(
            f"onnxruntime loop: {len(history)} trials, best drop {best['drop']:.4f} "
            f"with {best['fp32_layers']} layers kept fp32"
        )


class Int8StaticAggressive(_StaticInt8):
    id = "onnx-int8-static-aggressive"
    description = "static INT8, accuracy-aware tuning, validation accuracy drop <= 0.05"
    tolerance = 0.05


class Int8StaticConservative(_StaticInt8):
    id = "onnx-int8-static-conservative"
    description = "static INT8, accuracy-aware tuning, validation accuracy drop <= 0.01"
    tolerance = 0.01


# --------------------------------------------------------------------------------------------
# Helpers of the routes


def _weighted_nodes(model_path: Path) -> list[str]:
    """Names of the nodes whose weights quantisation touches, in graph order."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    names = [
        n.name
        for n in graph.node
        if n.op_type in WEIGHTED_OPS and any(i in initializers for i in n.input[1:])
    ]
    if not names:
        raise _RouteFailed("the model has no Conv/Gemm/MatMul with weights to quantise")
    return names


def _exclusion_schedule(weighted: list[str], rank: Callable[[], list[str]], max_excluded: int):
    """The fp32 layers of each trial: none; the first and last weighted layers; then also the
    2, 4, 8, ... layers most sensitive to quantisation (ranked once, after the first trial);
    never more than ``max_excluded`` layers."""
    yield []
    excluded = list(dict.fromkeys([weighted[0], weighted[-1]]))[:max_excluded]
    if not excluded:
        return
    yield excluded
    ranked = [n for n in rank() if n not in excluded]
    k = 2
    while ranked and len(excluded) < max_excluded:
        step = ranked[: min(k, max_excluded - len(excluded))]
        excluded, ranked = excluded + step, ranked[len(step) :]
        yield excluded
        k *= 2


def int8_layers(model_path: Path) -> tuple[int, int]:
    """(INT8 layers, all weighted layers) of a quantised model, in either format: QOperator
    nodes (QLinearConv, ConvInteger, ...) or QDQ (a Conv/Gemm/MatMul fed dequantised weights)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    dequantised = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers}
    int8 = fp32 = 0
    for node in graph.node:
        if node.op_type in INT8_OPS:
            int8 += 1
        elif node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            if node.input[1] in dequantised:
                int8 += 1
            elif node.input[1] in initializers:
                fp32 += 1
    return int8, int8 + fp32


def _quantize_qdq(fp32: Path, out: Path, input_name: str, calib: np.ndarray, excluded: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    try:
        quantize_static(
            str(fp32),
            str(out),
            _CalibrationReader(input_name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(excluded),
            calibrate_method=CalibrationMethod.MinMax,
        )
    except Exception as exc:  # the quantiser's own failures end this route, not the suite
        raise _RouteFailed(f"quantize_static failed: {type(exc).__name__}: {exc}") from exc


def _rank_by_sensitivity(fp32: Path, qdq: Path, calib: np.ndarray, input_name: str) -> list[str]:
    """Weighted nodes, most hurt by quantisation first: the lowest signal-to-quantisation-noise
    ratio (dB) among the node's weight and its quantised input activations, measured with
    onnxruntime's own QDQ debugging tools on a few calibration images."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as qdq_debug

    sample = calib[: min(4, len(calib))]
    with tempfile.TemporaryDirectory(dir=qdq.parent) as tmp:
        fp32_aug, qdq_aug = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        qdq_debug.modify_model_output_intermediate_tensors(str(fp32), str(fp32_aug))
        qdq_debug.modify_model_output_intermediate_tensors(str(qdq), str(qdq_aug))
        float_acts = qdq_debug.collect_activations(str(fp32_aug), _CalibrationReader(input_name, sample))
        qdq_acts = qdq_debug.collect_activations(str(qdq_aug), _CalibrationReader(input_name, sample))
    activation_snr = {
        name: err["qdq_err"]
        for name, err in qdq_debug.compute_activation_error(
            qdq_debug.create_activation_matching(qdq_acts, float_acts)
        ).items()
    }
    weight_snr = qdq_debug.compute_weight_error(qdq_debug.create_weight_matching(str(fp32), str(qdq)))
    graph = onnx.load(str(fp32)).graph
    weighted = set(_weighted_nodes(fp32))
    scores = {}
    for node in graph.node:
        if node.name in weighted:
            snrs = [activation_snr[i] for i in node.input if i in activation_snr]
            snrs += [weight_snr[i] for i in node.input if i in weight_snr]
            scores[node.name] = min(snrs, default=float("inf"))
    return sorted(scores, key=scores.__getitem__)
