"""Accuracy-aware static INT8 quantisation with Intel Neural Compressor, as a standalone script.

Neural Compressor's ONNX support (3.7.x) needs numpy<2 and onnx 1.16, which the engine's own
environment cannot have (docs/DESIGN.md), so the engine runs this file with the Python of the
quantiser's environment. It therefore imports nothing from servebench_engine: arguments in,
a quantised model and a JSON result out.

    python quantize_inc.py --model fp32.onnx --data tuning.npz --tolerance 0.05 \
        --max-trials 5 --timeout 60 --out int8.onnx --result result.json

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
    args = parser.parse_args(argv)

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

    batch = min(8, len(calib))
    conf = PostTrainingQuantConfig(
        approach="static",
        quant_format="QOperator",
        device="cpu",
        calibration_sampling_size=[len(calib) // batch * batch],
        tuning_criterion=TuningCriterion(max_trials=args.max_trials, timeout=args.timeout),
        accuracy_criterion=AccuracyCriterion(
            tolerable_loss=args.tolerance, criterion="absolute", higher_is_better=True
        ),
    )
    started = time.perf_counter()
    model = onnx.load(args.model)
    qmodel = quantization.fit(
        model,
        conf,
        calib_dataloader=_Batches(calib, batch),
        eval_func=eval_func,
    )
    elapsed = time.perf_counter() - started
    result = {
        "met": qmodel is not None,
        "neural_compressor": neural_compressor.__version__,
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "approach": "static",
        "quant_format": "QOperator",
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
