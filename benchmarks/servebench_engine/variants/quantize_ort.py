"""Static INT8 route 2: ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel weights)
driven by the engine's own accuracy-aware loop. Quantise everything; then keep the first and last
weighted layers in fp32; then also keep the layers that quantisation hurts most (ranked once, by
the signal-to-quantisation-noise ratio of their weights and input activations), until the
validation accuracy drop meets the tolerance or the budget runs out."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .quantize_common import (MIN_INT8_FRACTION, WEIGHTED_OPS, Job, RouteFailed, ToleranceNotMet,
                               accuracy, cpu_session, predict)


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


def ort_route(job: Job, tolerance: float) -> dict[str, Any]:
    """Write ``job.out`` from the first trial within ``tolerance``; the record's fields."""
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
                f"fp32, validation accuracy drop {drop:+.4f} (tolerance {tolerance})")
        if drop <= tolerance + 1e-9:
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
        raise RouteFailed("the model has no Conv/Gemm/MatMul with weights to quantise")
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
        raise RouteFailed(f"quantize_static failed: {type(exc).__name__}: {exc}") from exc


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
