"""What both INT8 routes and the variants share: the tuning budget and data, evaluation with the
serving onnxruntime, and the count of layers a quantised model really runs in INT8."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..profiles import Profile

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

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
    # 128: the calibration sampling size of the tutorial's Neural Compressor runs (seed 002).
    "full": Budget(calibration_images=128, max_trials=8, timeout_s=900),
}


class ToleranceNotMet(RuntimeError):
    """No INT8 model within the tuning budget kept the accuracy drop within the tolerance."""


class RouteFailed(Exception):
    """The route could not run at all (not installed, crashed); the next route is tried."""


def budget_for(profile: Profile) -> Budget:
    try:
        return BUDGETS[profile.name]
    except KeyError:
        # Every profile must say how much tuning it affords: a silent default would give a new
        # profile another profile's budget.
        raise ValueError(f"no INT8 tuning budget for profile {profile.name!r}") from None


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
        return cls(
            calib=calibration_images(split.images, budget),
            val_x=np.ascontiguousarray(split.images, dtype=np.float32),
            val_y=np.asarray(split.labels, dtype=np.int64),
        )

    def fingerprint(self) -> str:
        """A digest of the tuning data: an INT8 model made from other data is not reused."""
        return data_fingerprint(self.calib, self.val_x, self.val_y)


def calibration_images(validation: np.ndarray, budget: Budget) -> np.ndarray:
    """What every INT8 route calibrates on: the validation split's first images (balanced: the
    splits are interleaved class by class), as many as the budget affords."""
    if len(validation) == 0:
        raise RuntimeError("the validation split is empty: nothing to calibrate or tune on")
    return np.ascontiguousarray(validation[:budget.calibration_images], dtype=np.float32)


def data_fingerprint(*arrays: np.ndarray) -> str:
    """A digest of images and labels (shapes and a strided sample of the pixels), for the keys of
    what was made from them (variants/reuse.py)."""
    import hashlib

    h = hashlib.sha256()
    for arr in arrays:
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr[..., ::8, ::8] if arr.ndim == 4 else arr).tobytes())
    return h.hexdigest()


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
class Job:
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



def gate(job: Job, candidate: Path, tolerance: float, who: str) -> dict[str, Any]:
    """What "INT8 means INT8" asks of any candidate, whatever made it: at least
    ``MIN_INT8_FRACTION`` of its weighted layers INT8, and a validation accuracy drop, measured
    by the serving onnxruntime, within ``tolerance``. Its fidelity fields, or ToleranceNotMet."""
    int8, total = int8_layers(candidate)
    if int8 < MIN_INT8_FRACTION * total:
        raise ToleranceNotMet(
            f"{who} met the tolerance only by keeping {total - int8} of {total} "
            f"weighted layers in fp32 (fewer than {MIN_INT8_FRACTION:.0%} INT8)"
        )
    fidelity = job.fidelity(candidate)
    if fidelity["accuracy_drop"] > tolerance + 1e-9:
        import onnxruntime

        raise ToleranceNotMet(
            f"{who}'s model drops {fidelity['accuracy_drop']:.4f} top-1 on the validation split "
            f"under onnxruntime {onnxruntime.__version__}, over the tolerance {tolerance}"
        )
    return fidelity


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
