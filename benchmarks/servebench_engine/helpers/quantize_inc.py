"""INT8 quantisation with Intel Neural Compressor (static accuracy-aware, or dynamic), as a
standalone script.

Neural Compressor's ONNX support (3.7.x) needs numpy<2 and onnx 1.16, which the engine's own
environment cannot have (docs/DESIGN.md), so the engine runs this file with the Python of the
quantiser's environment. It therefore imports nothing from servebench_engine: arguments in,
a quantised model and a JSON result out.

    python quantize_inc.py --model fp32.onnx --data tuning.npz --tolerance 0.05 \
        --max-trials 5 --timeout 60 --out int8.onnx --result result.json \
        [--approach static|dynamic] [--quant-level 1] [--graph-optimization-level ENABLE_EXTENDED] \
        [--calibration-sampling-size 128]

The settings default to the tutorial's (seed 002): ``quant_level=1``, the recipe
``graph_optimization_level: ENABLE_EXTENDED``, QOperator, a calibration sampling size of 128
(cut to the calibration images given). Dynamic quantisation calibrates and tunes nothing: INC's
first configuration is the model (its accuracy is the engine's to measure).

tuning.npz holds ``calib`` (NCHW float32 images for calibration), ``val_x`` and ``val_y``
(images and integer targets the accuracy is measured against). The result JSON says whether a
model meeting ``fp32 accuracy - int8 accuracy <= tolerance`` was found, in how many trials.
Exit status: 0 met, 3 not met within the budget, anything else a failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

NOT_MET = 3


class _Batches:
    """The calibration loader Neural Compressor iterates: (input, label) pairs, with batch_size."""

    def __init__(self, images: np.ndarray, batch_size: int):
        self.images = images
        self.batch_size = batch_size

    def __iter__(self):
        for start in range(0, len(self.images), self.batch_size):
            batch = self.images[start : start + self.batch_size]
            yield batch, np.zeros(len(batch), dtype=np.int64)


def _progress(message: str) -> None:
    # The engine relays lines with this prefix as progress; the rest goes to the log file.
    print(f"servebench: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--tolerance", type=float, required=True)
    parser.add_argument("--max-trials", type=int, required=True)
    parser.add_argument("--timeout", type=int, required=True, help="tuning time limit, seconds")
    parser.add_argument("--out", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--approach", choices=["static", "dynamic"], default="static")
    parser.add_argument("--quant-level", default="1", help="auto, 0 or 1 (INC's quant_level)")
    parser.add_argument("--graph-optimization-level", default="ENABLE_EXTENDED",
                        choices=["DISABLE_ALL", "ENABLE_BASIC", "ENABLE_EXTENDED", "ENABLE_ALL"])
    parser.add_argument("--calibration-sampling-size", type=int, default=128)
    args = parser.parse_args(argv)
    quant_level = args.quant_level if args.quant_level == "auto" else int(args.quant_level)

    import neural_compressor
    import onnx
    import onnxruntime as ort
    from neural_compressor import PostTrainingQuantConfig, quantization
    from neural_compressor.config import AccuracyCriterion, TuningCriterion

    ort.set_default_logger_severity(3)
    data = np.load(args.data)
    calib, val_x, val_y = data["calib"], data["val_x"], data["val_y"]
    evaluations: list[float] = []

    def eval_func(model) -> float:
        # Neural Compressor hands over a ModelProto (or a path for >2 GB models).
        source = model if isinstance(model, str) else model.SerializeToString()
        session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        correct = 0
        for start in range(0, len(val_x), 16):
            logits = session.run(None, {name: val_x[start : start + 16]})[0]
            correct += int((logits.argmax(axis=1) == val_y[start : start + 16]).sum())
        accuracy = correct / len(val_x)
        evaluations.append(accuracy)
        what = "fp32 baseline" if len(evaluations) == 1 else f"trial {len(evaluations) - 1}"
        _progress(f"neural-compressor {what}: validation accuracy {accuracy:.4f}")
        return accuracy

    batch = max(1, min(8, len(calib)))
    # INC draws whole batches up to the sampling size: no more than the images there are.
    sampling = max(batch, min(args.calibration_sampling_size, len(calib)) // batch * batch)
    settings = {
        "approach": args.approach,
        "quant_format": "QOperator",
        "quant_level": quant_level,
        "recipes": {"graph_optimization_level": args.graph_optimization_level},
    }
    if args.approach == "static":
        conf = PostTrainingQuantConfig(
            device="cpu",
            calibration_sampling_size=[sampling],
            tuning_criterion=TuningCriterion(max_trials=args.max_trials, timeout=args.timeout),
            accuracy_criterion=AccuracyCriterion(
                tolerable_loss=args.tolerance, criterion="absolute", higher_is_better=True
            ),
            **settings,
        )
        fit_args = {"calib_dataloader": _Batches(calib, batch), "eval_func": eval_func}
        settings["calibration_sampling_size"] = sampling
        settings["calibration_sampling_size_asked"] = args.calibration_sampling_size
    else:
        conf = PostTrainingQuantConfig(device="cpu", **settings)
        fit_args = {}
    started = time.perf_counter()
    model = onnx.load(args.model)
    qmodel = quantization.fit(model, conf, **fit_args)
    elapsed = time.perf_counter() - started
    result = {
        "met": qmodel is not None,
        "neural_compressor": neural_compressor.__version__,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "approach": args.approach,
        "quant_format": "QOperator",
        "settings": settings,
        "tolerance": args.tolerance,
        "fp32_accuracy": evaluations[0] if evaluations else None,
        "trial_accuracies": evaluations[1:],
        "trials": max(len(evaluations) - 1, 0),
        "tuning_s": round(elapsed, 3),
    }
    if qmodel is not None:
        qmodel.save(args.out)
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    return 0 if qmodel is not None else NOT_MET


if __name__ == "__main__":
    sys.exit(main())
