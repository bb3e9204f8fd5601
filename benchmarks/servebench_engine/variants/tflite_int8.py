"""tflite-int8: the edge option as a full-integer INT8 .tflite (int8 weights, activations, input
and output), about a third of the float file (MobileNetV2: 8.9 MB -> 2.7 MB, under an edge
device's 5 MB).

The model served is, in order: ``--tflite-int8-model`` when given; else the float .tflite (the
``tflite`` variant's: ``--tflite-model``, or the engine's model converted, the same file and
manifest, variants/reuse.py) quantised by ``helpers/quantize_tflite.py`` in the converter's
environment (``--tflite-converter-python``): ai-edge-quantizer's ``static_wi8_ai8`` recipe,
calibrated on the first ``Budget.calibration_images`` images of the validation split (the
INT8 variants' calibration set, variants/quantize_common.py), which ``prepare`` writes to a
scratch ``.npy`` in the artifacts folder.

INT8 means INT8 here too (README: honesty rules): the INT8 file is served only if, run in LiteRT
beside the float .tflite on the evaluation split, it loses at most the profile's
``tflite_int8_tolerance`` of top-1 accuracy; otherwise the variant is an error
(``ToleranceNotMet``). A given INT8 file is held to the same gate when a float .tflite is there
(given or converted); when none is, it is served and the record says why it was not checked
(``tolerance_checked: false``, ``gate_not_run``). The quantised model and the gate's measurement
are each kept with a manifest (reused by a repeat's fresh process); the tolerance is applied
afresh every time, so changing it never remakes the model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..helpers import QUANTIZE_TFLITE, SCRIPT_IO
from ..model.onnx_file import data_config_of
from ..results import write_record
from . import reuse
from .base import VariantSkipped
from .helper_process import absolute_python, run_for_json
from .quantize_common import ToleranceNotMet, TuningSet, budget_for, data_fingerprint
from .tflite_variant import TfliteModel, TfliteVariant, convert, describe, require_runtime

if TYPE_CHECKING:  # pragma: no cover
    from ..context import Context

QUANTIZE_TIMEOUT_S = 600  # seen here: 2-4 s for MobileNetV2 on 2 cores (16-128 images)
INT8_FILE = "model.int8.tflite"
GATE_FILE = "model.int8.gate.json"
GATE_BATCH = 32


class TfliteInt8Variant(TfliteVariant):
    id = "tflite-int8"
    description = "TFLite / LiteRT interpreter with a full-integer INT8 .tflite, accuracy-gated"
    # Its own work, measured here (quick profile, MobileNetV2, 2 cores): quantisation 2.0 s, the
    # gate's two passes over 88 images 1.4 s, the interpreters' loading. The float conversion it
    # shares with tflite (30 s, so scheduled first): started after it, this finds the .tflite
    # made (or waits for it, reuse.locked) instead of holding a second lane to convert again.
    # Alone (no tflite in the run) it converts too, 17-40 s.
    prepare_estimate_s = 5.0

    def prepare(self, ctx: "Context") -> None:
        """Find or make the INT8 model, gate it against the float one, describe both."""
        require_runtime()
        float_path, float_info = _float_tflite(ctx)
        made: dict[str, Any] = {}
        if ctx.tflite_int8_model is not None:
            self._model_path = ctx.tflite_int8_model
        elif float_path is None:
            raise VariantSkipped(f"no INT8 .tflite given (--tflite-int8-model) and no float one "
                                 f"to quantise: {float_info['unavailable']}")
        elif not ctx.tflite_converter_python:
            raise VariantSkipped("no INT8 .tflite given (--tflite-int8-model) and no converter "
                                 "environment to quantise in (--tflite-converter-python; `make "
                                 "bench` builds one)")
        else:
            self._model_path, made = self._quantised(ctx, float_path)
        config = data_config_of(ctx.model_onnx)
        model = TfliteModel(self._model_path, ctx.threads, config)
        source = f"quantised ({made['route']})" if made else "given"
        info = describe(model, ctx, source)
        info.update({
            "tflite_int8_source": "quantised" if made else "given",
            "float_tflite_source": float_info.get("source"),
            "int8_size_bytes": self._model_path.stat().st_size,
            "float_size_bytes": float_path.stat().st_size if float_path else None,
        })
        if float_path is not None:
            info["size_ratio"] = round(info["int8_size_bytes"] / info["float_size_bytes"], 4)
        if "conversion" in float_info:
            info["conversion"] = float_info["conversion"]
        if made:
            info.update(quantiser="ai-edge-quantizer", recipe=made["recipe"],
                        calibration_images=made["calibration_images"], quantisation=made)
        info.update(_gate(ctx, float_path, float_info, self._model_path))
        self._info = info

    def _quantised(self, ctx: "Context", float_path: Path) -> tuple[Path, dict[str, Any]]:
        """``float_path`` quantised by quantize_tflite.py (or what an earlier prepare made of the
        same file and calibration images); its JSON result."""
        calib = TuningSet.from_context(ctx, budget_for(ctx.profile)).calib
        out = ctx.workdir / INT8_FILE
        key = reuse.source_key(self.id, float_path, calibration=data_fingerprint(calib),
                               quantiser=reuse.sha256_of(QUANTIZE_TFLITE),
                               script_io=reuse.sha256_of(SCRIPT_IO))
        made = reuse.reusable(out, key)
        self.reused = made is not None
        if made is not None:
            ctx.log(f"reusing {out.name}, quantised by an earlier prepare from the same inputs")
            return out, made
        reuse.forget(out)
        with tempfile.TemporaryDirectory(dir=ctx.workdir, prefix=f".{self.id}-") as scratch:
            images = Path(scratch) / "calibration.npy"
            np.save(images, calib, allow_pickle=False)
            command = [str(absolute_python(ctx.tflite_converter_python)), str(QUANTIZE_TFLITE),
                       "--tflite", str(float_path), "--calibration", str(images), "--out", str(out)]
            result = run_for_json("TFLite INT8 quantisation", command, ctx.workdir,
                                  ctx.workdir / "tflite-int8-quantisation.log", QUANTIZE_TIMEOUT_S,
                                  ctx.log)
        ctx.log(f"quantised to {out.name}: {result['size_bytes']:,} bytes (float "
                f"{result['float_size_bytes']:,}) in {result['seconds']:.1f} s")
        return out, reuse.remember(out, key, result)


def _float_tflite(ctx: "Context") -> tuple[Path | None, dict[str, Any]]:
    """The float .tflite to quantise and to gate against: the one given, else the tflite
    variant's conversion (its file and manifest); None with the reason when there is none."""
    if ctx.tflite_model is not None:
        return ctx.tflite_model, {"source": "given"}
    try:
        path, conversion, _ = convert(ctx)
    except VariantSkipped as e:
        return None, {"unavailable": str(e)}
    return path, {"source": "converted", "conversion": conversion}


def _gate(ctx: "Context", float_path: Path | None, float_info: dict[str, Any],
          int8_path: Path) -> dict[str, Any]:
    """The INT8 model's top-1 accuracy against the float model's, both in LiteRT on the
    evaluation split: the fields the record shows, or ToleranceNotMet over the tolerance."""
    tolerance = ctx.profile.tflite_int8_tolerance
    split = ctx.splits["evaluation"]
    why_not = (f"no float .tflite to compare with: {float_info['unavailable']}"
               if float_path is None else
               "the evaluation split is empty" if len(split.labels) == 0 else None)
    if why_not is None:
        measured = _measure(ctx, float_path, int8_path)
        why_not = measured.get("unscorable")
    if why_not is not None:
        return {"tolerance": tolerance, "tolerance_checked": False, "gate_not_run": why_not}
    if measured["accuracy_drop"] > tolerance + 1e-9:
        raise ToleranceNotMet(
            f"the INT8 .tflite drops {measured['accuracy_drop']:.4f} top-1 against the float "
            f".tflite on the evaluation split ({measured['evaluation_images']} images, LiteRT), "
            f"over the tolerance {tolerance}"
        )
    return {"tolerance": tolerance, "tolerance_checked": True, **measured}


def _measure(ctx: "Context", float_path: Path, int8_path: Path) -> dict[str, Any]:
    """Both models' answers on the evaluation split (kept in GATE_FILE with a manifest, so a
    repeat's process does not run them again)."""
    split = ctx.splits["evaluation"]
    record = ctx.workdir / GATE_FILE
    key = reuse.source_key("tflite-int8-gate", float_path, int8_sha256=reuse.sha256_of(int8_path),
                           evaluation=data_fingerprint(split.images, split.labels))
    kept = reuse.reusable(record, key)
    if kept is not None:
        return kept
    reuse.forget(record)
    started = time.perf_counter()
    config = data_config_of(ctx.model_onnx)
    models = {name: TfliteModel(path, ctx.threads, config)
              for name, path in (("fp32", float_path), ("int8", int8_path))}
    classes = {name: m.num_classes for name, m in models.items()}
    if set(classes.values()) != {ctx.num_classes}:
        measured: dict[str, Any] = {"unscorable": (
            f"the float .tflite predicts {classes['fp32']} classes, the INT8 one "
            f"{classes['int8']}, the data set has {ctx.num_classes}")}
    else:
        ctx.log(f"gate: the float and INT8 .tflite on {len(split.labels)} evaluation images")
        top1 = {name: _top1(m, split.images) for name, m in models.items()}
        fp32_acc, int8_acc = (float((top1[n] == split.labels).mean()) for n in ("fp32", "int8"))
        measured = {
            "fp32_accuracy": fp32_acc,
            "int8_accuracy": int8_acc,
            "accuracy_drop": fp32_acc - int8_acc,
            "top1_agreement_with_fp32": float((top1["int8"] == top1["fp32"]).mean()),
            "evaluation_images": len(split.labels),
            "gate_s": round(time.perf_counter() - started, 3),
        }
    write_record(record, measured)
    return reuse.remember(record, key, measured)


def _top1(model: TfliteModel, images: np.ndarray) -> np.ndarray:
    return np.concatenate([model.run_engine_batch(images[i : i + GATE_BATCH]).argmax(axis=1)
                           for i in range(0, len(images), GATE_BATCH)])
