"""tflite-int8: the engine's model as a full-integer INT8 .tflite, made by quantize_tflite.py
(ai-edge-quantizer) in the converter environment (.venv-litert), gated in LiteRT against the
float .tflite. Real LiteRT, real ai-edge-quantizer, the tiny random-weight MobileNetV2.

The float .tflite is the session's one conversion (conftest.converted_tflite, the tflite
variant's own, tested in test_tflite.py); each test that prepares starts from a workdir holding
it and its manifest, as a run's artifacts folder does once the tflite variant has prepared."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time

import numpy as np
import pytest

from servebench_engine import cli
from servebench_engine.context import Split
from servebench_engine.helpers import QUANTIZE_TFLITE
from servebench_engine.suite import run_variant
from servebench_engine.variants import reuse
from servebench_engine.variants.tflite_int8 import GATE_FILE, INT8_FILE, TfliteInt8Variant
from servebench_engine.variants.tflite_variant import TfliteModel
from tests.support.helper_envs import LITERT_PROBE, helper_python
from tests.support.variant_context import make_context, tiny_assets  # noqa: F401

FLOAT_FILE = "model.tflite"


@pytest.fixture(scope="module")
def converted(converted_tflite):
    """The workdir holding the session's float .tflite (conftest.py) and its manifest."""
    return converted_tflite.ctx.workdir


@pytest.fixture
def int8_ctx(tiny_assets, converted, tmp_path):
    """A Context whose workdir already has the converted float .tflite (and can quantise)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    for name in (FLOAT_FILE, FLOAT_FILE + reuse.MANIFEST_SUFFIX):
        shutil.copy2(converted / name, workdir / name)
    return make_context(tiny_assets, workdir,
                        tflite_converter_python=helper_python(".venv-litert", LITERT_PROBE))


@pytest.fixture(scope="module")
def quantised(converted, tiny_assets, tmp_path_factory):
    """quantize_tflite.py run by hand on the float .tflite: (the INT8 file, its stdout)."""
    folder = tmp_path_factory.mktemp("quantised")
    calibration = folder / "calibration.npy"
    np.save(calibration, tiny_assets.splits["validation"].images[:8])
    out = folder / "model.int8.tflite"
    done = subprocess.run(
        [helper_python(".venv-litert", LITERT_PROBE), str(QUANTIZE_TFLITE),
         "--tflite", str(converted / FLOAT_FILE), "--calibration", str(calibration),
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout


def _record(variant_id, ctx):
    run = {"host": "h", "host_kind": "local", "profile": ctx.profile.name, "model": {}, "data": {},
           "environment": {}, "batch_size": ctx.profile.batch_size}
    return run_variant(variant_id, ctx, run, say=lambda m: None)


def test_the_script_prints_one_json_line_and_writes_a_full_integer_model(quantised, converted):
    out, stdout = quantised
    (line,) = stdout.splitlines()  # the quantiser's progress bars went to stderr
    result = json.loads(line)
    assert result["route"] == "float .tflite -> ai-edge-quantizer (static_wi8_ai8)"
    assert result["recipe"] == "static_wi8_ai8" and result["calibration_images"] == 8
    assert result["size_bytes"] == out.stat().st_size
    assert result["float_size_bytes"] == (converted / FLOAT_FILE).stat().st_size
    assert result["size_bytes"] < 0.35 * result["float_size_bytes"]
    assert (result["input_dtype"], result["output_dtype"]) == ("int8", "int8")
    assert result["input_shape_signature"] == [-1, 3, 224, 224]
    ops = result["ops"]
    assert ops["float"] == 0 and ops["int8"] == ops["total"] > 50, ops
    assert ops["by_type"]["CONV_2D"] == 35
    assert result["versions"]["ai_edge_quantizer"] == "0.10.0"
    assert not list(out.parent.glob("*.part"))


def test_an_nchw_int8_model_gets_the_engine_batch_quantised(quantised, tiny_assets):
    """The engine's batches are normalised floats: cast to int8 as they are, they would reach
    the model as -2..2, not as its input's scale and zero point say."""
    from ai_edge_litert.interpreter import Interpreter

    images = tiny_assets.splits["evaluation"].images[:4]
    model = TfliteModel(quantised[0], threads=1)
    assert (model.channels_last, np.dtype(model.input_details["dtype"])) == (False, np.int8)

    def reference(batch):
        """LiteRT's interpreter fed ``batch`` as int8, its output dequantised, by hand."""
        interpreter = Interpreter(model_path=str(quantised[0]), num_threads=1)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(inp["index"], list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        scale, zero_point = out["quantization"]
        return (interpreter.get_tensor(out["index"]).astype(np.float32) - zero_point) * scale

    scale, zero_point = model.input_details["quantization"]
    quantised_images = np.clip(np.round(images / scale + zero_point), -128, 127).astype(np.int8)
    expected = reference(quantised_images)

    got = model.run_engine_batch(images)

    assert got.dtype == np.float32 and got.shape == expected.shape == (4, 11)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # What a plain cast gives is another model's answer altogether.
    assert np.abs(reference(images.astype(np.int8)) - expected).max() > 0.1 * np.abs(expected).max()


def test_the_variant_quantises_gates_and_a_repeat_reuses_both(int8_ctx):
    ctx = int8_ctx
    variant = TfliteInt8Variant()
    variant.prepare(ctx)
    served = variant.load(ctx)

    out = ctx.workdir / INT8_FILE
    assert served.model_path == out and served.max_batch is None
    logits = served.infer(ctx.sample(3))
    assert logits.shape == (3, 11) and logits.dtype == np.float32
    info = served.info
    assert info["route"] == ("quantised (float .tflite -> ai-edge-quantizer (static_wi8_ai8)) "
                             ".tflite, ai_edge_litert interpreter, NCHW int8 input")
    assert (info["tflite_int8_source"], info["float_tflite_source"]) == ("quantised", "converted")
    assert info["int8_size_bytes"] == out.stat().st_size < 5_000_000
    assert info["float_size_bytes"] == (ctx.workdir / FLOAT_FILE).stat().st_size
    assert info["size_ratio"] < 0.35
    # The quick profile's calibration budget, from the validation split.
    assert info["calibration_images"] == 16 == info["quantisation"]["calibration_images"]
    assert info["quantiser"] == "ai-edge-quantizer" and info["recipe"] == "static_wi8_ai8"
    assert info["tolerance"] == 0.05 and info["tolerance_checked"] is True
    assert info["evaluation_images"] == len(ctx.splits["evaluation"].labels) == 11
    assert info["accuracy_drop"] == pytest.approx(info["fp32_accuracy"] - info["int8_accuracy"])
    assert info["accuracy_drop"] <= 0.05 and 0 <= info["top1_agreement_with_fp32"] <= 1
    assert "accuracy_unavailable" not in info and "gate_not_run" not in info
    assert (ctx.workdir / "tflite-int8-quantisation.log").read_text().strip()
    assert not [p for p in ctx.workdir.iterdir() if p.name.startswith(".tflite-int8-")]
    assert variant.reused is False

    # A repeat (a fresh variant, the same workdir): the same file and the same gate, not made
    # or measured again.
    made = out.stat().st_mtime_ns, (ctx.workdir / GATE_FILE).stat().st_mtime_ns
    again = TfliteInt8Variant()
    started = time.perf_counter()
    again.prepare(ctx)
    assert again.reused is True and time.perf_counter() - started < 2
    assert again.load(ctx).info == info
    assert (out.stat().st_mtime_ns, (ctx.workdir / GATE_FILE).stat().st_mtime_ns) == made

    # An INT8 file that no longer matches its manifest is not served: it is made again.
    out.write_bytes(out.read_bytes()[:-100])
    third = TfliteInt8Variant()
    third.prepare(ctx)
    assert third.reused is False and out.stat().st_size == info["int8_size_bytes"]


def test_an_int8_model_that_disagrees_with_the_float_one_is_a_tolerance_error(int8_ctx):
    """Evaluation labels that are the float .tflite's own answers (float accuracy 1.0): every
    image the INT8 model answers otherwise is a drop, and the random-weight network's logits are
    too close together for INT8 to keep them all."""
    evaluation = int8_ctx.splits["evaluation"]
    float_answers = TfliteModel(int8_ctx.workdir / FLOAT_FILE, 2).run_engine_batch(
        evaluation.images).argmax(1)
    ctx = dataclasses.replace(int8_ctx, splits={
        **int8_ctx.splits, "evaluation": Split(evaluation.images, float_answers, evaluation.paths)})

    record = _record("tflite-int8", ctx)

    assert record["status"] == "error", record
    assert record["error_type"] == "ToleranceNotMet"
    assert record["reason"].startswith("the INT8 .tflite drops ")
    assert "against the float .tflite on the evaluation split (11 images, LiteRT), over the " \
           "tolerance 0.05" in record["reason"]
    assert record["latency_ms"] is None and record["model_size_bytes"] is None

    # The tolerance is not part of what was made: a looser one serves the same file, measured
    # once (the gate's record is reused too).
    gate = ctx.workdir / GATE_FILE
    measured = gate.stat().st_mtime_ns
    loose = dataclasses.replace(ctx, profile=dataclasses.replace(ctx.profile,
                                                                 tflite_int8_tolerance=1.0))
    variant = TfliteInt8Variant()
    variant.prepare(loose)
    info = variant.load(loose).info
    assert variant.reused is True and gate.stat().st_mtime_ns == measured
    assert info["fp32_accuracy"] == 1.0 and info["tolerance"] == 1.0
    assert info["accuracy_drop"] == pytest.approx(1 - info["top1_agreement_with_fp32"])
    assert info["accuracy_drop"] > 0.05


def test_a_given_int8_model_is_gated_when_a_float_one_is_there_and_says_so_when_not(
    quantised, converted, tiny_assets, tmp_path
):
    given = quantised[0]
    ctx = make_context(tiny_assets, tmp_path / "work", tflite_int8_model=given,
                       tflite_model=converted / FLOAT_FILE)
    variant = TfliteInt8Variant()
    variant.prepare(ctx)
    info = variant.load(ctx).info
    assert variant.load(ctx).model_path == given
    assert (info["tflite_int8_source"], info["float_tflite_source"]) == ("given", "given")
    assert info["route"] == "given .tflite, ai_edge_litert interpreter, NCHW int8 input"
    assert info["tolerance_checked"] is True and "fp32_accuracy" in info
    assert "quantisation" not in info and not (ctx.workdir / INT8_FILE).exists()

    # No float .tflite and no converter: served, and the record says why nothing was checked.
    alone = make_context(tiny_assets, tmp_path / "alone", tflite_int8_model=given)
    variant = TfliteInt8Variant()
    variant.prepare(alone)
    info = variant.load(alone).info
    assert info["tolerance_checked"] is False and info["float_size_bytes"] is None
    assert info["gate_not_run"].startswith("no float .tflite to compare with: no .tflite model "
                                           "given (--tflite-model) and no converter environment")


def test_without_an_int8_model_or_a_way_to_make_one_the_variant_is_skipped(tiny_assets, tmp_path,
                                                                           litert):
    ctx = make_context(tiny_assets, tmp_path / "work")
    record = _record("tflite-int8", ctx)
    assert record["status"] == "skipped"
    assert record["reason"].startswith("no INT8 .tflite given (--tflite-int8-model) and no float "
                                       "one to quantise: no .tflite model given")


def test_bench_run_serves_a_given_int8_tflite_and_records_its_size(
    quantised, converted, tiny_assets, tmp_path, monkeypatch
):
    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    out = tmp_path / "run"
    code = cli.main(["--model", str(tiny_assets.onnx), "--variants", "tflite-int8",
                     "--profile", "smoke", "--tflite-model", str(converted / FLOAT_FILE),
                     "--tflite-int8-model", str(quantised[0]), "--out", str(out),
                     "--threads", "1"])

    assert code == 0
    rec = json.loads((out / "tflite-int8.json").read_text())
    assert rec["status"] == "ok", rec["reason"]
    assert rec["model_size_bytes"] == quantised[0].stat().st_size
    assert rec["latency_ms"]["p50"] > 0 and rec["accuracy"]["value"] is not None
    assert rec["info"]["tolerance_checked"] is True
    assert rec["info"]["float_size_bytes"] == (converted / FLOAT_FILE).stat().st_size
