"""``bench-run`` end to end: the real shared INT8 model, the default model, and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servebench_engine.results import SCHEMA_VERSION

from .conftest import SHARED_INT8_SHA256, SHARED_INT8_SIZE, make_onnx

RECORD_KEYS = {
    "schema_version", "variant", "status", "reason", "host", "host_kind", "profile", "model",
    "served_model", "model_size_bytes", "data", "accuracy", "latency_ms", "single_fps_from_p50",
    "single_fps_trials",
    "batch_size", "batch_latency_ms", "batch_throughput", "cold_start_ms", "providers", "route",
    "info", "environment", "samples", "started_at", "finished_at",
}
STATS_KEYS = {"count", "duration_s", "min", "max", "mean", "stdev", "p50", "p90", "p95", "p99",
              "iqr", "median_ci95", "noisy"}


def check_stats(stats: dict, samples: list[int]) -> None:
    assert STATS_KEYS <= set(stats)
    assert stats["count"] == len(samples) > 0
    assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p95"] <= stats["p99"] \
        <= stats["max"]
    assert stats["p50"] == pytest.approx(sorted(samples)[(len(samples) + 1) // 2 - 1] / 1e6)


def test_shared_int8_model_through_bench_run(bench_run, shared_int8, tmp_path, monkeypatch):
    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    out = tmp_path / "run"
    r = bench_run("--model", shared_int8, "--variants", "onnx-cpu,onnx-optimized",
                  "--profile", "quick", "--out", out, "--host-label", "testhost",
                  "--threads", "1")
    assert r.code == 0, r.err
    assert "2/2] onnx-optimized: ok p50=" in r.out
    for vid in ("onnx-cpu", "onnx-optimized"):
        rec = json.loads((out / f"{vid}.json").read_text())
        assert RECORD_KEYS <= set(rec)
        assert (rec["schema_version"], rec["variant"], rec["status"], rec["reason"]) == \
            (SCHEMA_VERSION, vid, "ok", None)
        assert (rec["host"], rec["host_kind"], rec["profile"]) == ("testhost", "local", "quick")
        assert rec["model"]["sha256"] == SHARED_INT8_SHA256
        assert rec["model"]["random_weights"] is False and rec["model"]["quantized"] is True
        assert rec["data"]["synthetic"] is True and rec["data"]["counts"]["evaluation"] == 44
        assert rec["accuracy"]["total"] == 44 and 0 <= rec["accuracy"]["correct"] <= 44
        assert rec["providers"]["active"] == ["CPUExecutionProvider"]
        lat = rec["latency_ms"]
        check_stats(lat, rec["samples"]["latency_ns"])
        check_stats(rec["batch_latency_ms"], rec["samples"]["batch_ns"])
        # quick: at least 100 samples unless its 2 s cap stopped a slow machine first.
        assert lat["count"] >= 100 or rec["info"]["minimums_met"]["latency"] is False
        assert rec["single_fps_from_p50"] == pytest.approx(1000 / lat["p50"])
        assert rec["batch_throughput"] == pytest.approx(32_000 / rec["batch_latency_ms"]["mean"])
        assert rec["cold_start_ms"] > 0 and rec["environment"]["threads"] == 1
        assert rec["environment"]["libraries"]["onnxruntime"]
    cpu = json.loads((out / "onnx-cpu.json").read_text())
    assert cpu["model_size_bytes"] == SHARED_INT8_SIZE
    opt = json.loads((out / "onnx-optimized.json").read_text())
    assert opt["model"]["name"] == "food11_quantized_aggressive"
    assert (out / "artifacts" / "food11_quantized_aggressive" / opt["served_model"]).stat().st_size \
        == opt["model_size_bytes"]
    suite = json.loads((out / "suite.json").read_text())
    assert suite["status"] == "complete" and suite["variants"] == ["onnx-cpu", "onnx-optimized"]
    assert suite["models"] == ["food11_quantized_aggressive"]
    assert {k: v["file"] for k, v in suite["results"].items()} == \
        {"onnx-cpu": "onnx-cpu.json", "onnx-optimized": "onnx-optimized.json"}


def test_the_two_shared_int8_models_side_by_side(bench_run, shared_data, tmp_path, monkeypatch):
    """Seed 000's comparison: the tutorial's dynamic and static INT8 Food-11 models in one run.
    The ONNX Runtime variants serve each as given (never quantised again); the torch variants
    and tflite cannot, and say why."""
    models = [shared_data / "models" / f"food11_quantized_{k}.onnx" for k in ("aggressive", "dynamic")]
    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    out = tmp_path / "run"
    r = bench_run("--model", models[0], "--model", models[1], "--variants",
                  "onnx-cpu,onnx-int8-dynamic,torch-eager,tflite", "--profile", "smoke",
                  "--out", out, "--threads", "1")
    assert r.code == 0, r.err
    suite = json.loads((out / "suite.json").read_text())
    names = ["food11_quantized_aggressive", "food11_quantized_dynamic"]
    assert suite["models"] == names
    keys = [f"{n}__{v}" for n in names for v in ("onnx-cpu", "onnx-int8-dynamic", "torch-eager",
                                                  "tflite")]
    assert list(suite["results"]) == keys
    for name, path, kind in zip(names, models, ("static QOperator", "dynamic"), strict=True):
        cpu = json.loads((out / f"{name}__onnx-cpu.json").read_text())
        int8 = json.loads((out / f"{name}__onnx-int8-dynamic.json").read_text())
        assert cpu["status"] == int8["status"] == "ok", (cpu["reason"], int8["reason"])
        assert cpu["model"]["name"] == int8["model"]["name"] == name
        assert int8["served_model"] == path.name  # the file given, not a re-quantised one
        assert int8["model_size_bytes"] == path.stat().st_size
        assert int8["route"] == f"given (already INT8, {kind}): served as given, not re-quantised"
        assert int8["info"]["quantiser"] == "given"
        torch = json.loads((out / f"{name}__torch-eager.json").read_text())
        tflite = json.loads((out / f"{name}__tflite.json").read_text())
        assert torch["status"] == tflite["status"] == "skipped"
        assert "INT8 ONNX" in torch["reason"] and "already INT8" in tflite["reason"]
        assert (out / "artifacts" / name).is_dir()
    assert sorted(p.name for p in out.glob("*.json")) == sorted([*(k + ".json" for k in keys),
                                                                 "suite.json"])


def test_default_model_is_random_init_and_says_so(bench_run, tmp_path, monkeypatch):
    pytest.importorskip("torchvision", reason="the default model needs torch and torchvision")
    monkeypatch.delenv("FOOD11_DATA_DIR", raising=False)
    out = tmp_path / "run"
    r = bench_run("--variants", "onnx-cpu", "--profile", "smoke", "--out", out)
    assert r.code == 0, r.err
    rec = json.loads((out / "onnx-cpu.json").read_text())
    assert rec["status"] == "ok"
    assert rec["model"]["source"] == "random-init" and rec["model"]["random_weights"] is True
    assert rec["model"]["name"] == "random-init"
    assert rec["served_model"] == "model.onnx"
    assert (out / "artifacts" / "random-init" / "model.onnx").is_file()
    assert rec["model_size_bytes"] > 8_000_000  # MobileNetV2 in float32


def test_data_from_the_environment_variable(bench_run, shared_int8, tmp_path, monkeypatch):
    from servebench_engine.data import make_synthetic_tree

    root = make_synthetic_tree(tmp_path / "food11", num_classes=11, per_class=3)
    monkeypatch.setenv("FOOD11_DATA_DIR", str(root))
    out = tmp_path / "run"
    r = bench_run("--model", shared_int8, "--variants", "onnx-cpu", "--profile", "smoke",
                  "--out", out)
    assert r.code == 0, r.err
    data = json.loads((out / "onnx-cpu.json").read_text())["data"]
    # A tree given by the user is "food11" data, whatever made its pictures.
    assert (data["source"], data["root"]) == ("food11", str(root))
    assert data["counts"] == {"validation": 22, "evaluation": 22}  # smoke: 2 per class


def _bad_inputs(tmp: Path, shared: Path) -> dict[str, tuple[list, str]]:
    corrupt = tmp / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    wrong_shape = make_onnx(tmp / "gray.onnx", ["N", 1, 224, 224])
    not_a_dir = tmp / "file.txt"
    not_a_dir.write_text("x")
    namesake = tmp / "elsewhere" / shared.name
    namesake.parent.mkdir()
    shutil.copyfile(shared, namesake)
    shutil.copyfile(shared, namesake.with_name("b.onnx"))
    tflite = tmp / "other.tflite"
    tflite.write_bytes(b"TFL3")
    return {
        "two models, one name": (["--model", shared, "--model", namesake],
                                 ("--model .*elsewhere/food11_quantized_aggressive.onnx and .* "
                                  "are both named 'food11_quantized_aggressive'")),
        "tflite named like no model": (["--model", shared, "--model", namesake.with_name("b.onnx"),
                                        "--tflite-model", tflite],
                                       ("--tflite-model .*other.tflite matches no model"
                                        ".*food11_quantized_aggressive.tflite")),
        "int8 tflite named like no model": (
            ["--model", shared, "--model", namesake.with_name("b.onnx"), "--tflite-int8-model",
             tflite], ("--tflite-int8-model .*other.tflite matches no model"
                       ".*food11_quantized_aggressive.int8.tflite, b.int8.tflite")),
        "export-only of two models": (["--model", shared, "--model", namesake, "--export-only",
                                       tmp / "x.onnx"], "--export-only writes one model"),
        "missing model": (["--model", tmp / "nope.onnx"], "model file .*nope.onnx does not exist"),
        "corrupt onnx": (["--model", corrupt], "corrupt.onnx is not a valid ONNX model"),
        "wrong input shape": (["--model", wrong_shape], r"takes input shape \['N', 1, 224, 224\]"),
        "unknown variant": (["--model", shared, "--variants", "onnx-cpu,onnx-gpu"],
                            "unknown variant id.*onnx-gpu"),
        "missing data dir": (["--model", shared, "--data", tmp / "nodata"],
                             "data directory .*nodata does not exist"),
        "data dir without splits": (["--model", shared, "--data", tmp],
                                    "validation"),
        "data dir is a file": (["--model", shared, "--data", not_a_dir], "not a directory"),
        "bad profile": (["--model", shared, "--profile", "fast"], "invalid choice: 'fast'"),
        "bad threads": (["--model", shared, "--threads", "0"], "must be at least 1"),
        "missing tflite": (["--model", shared, "--tflite-model", tmp / "x.tflite"],
                           "--tflite-model .*x.tflite does not exist"),
        "missing quantizer python": (["--model", shared, "--quantizer-python", tmp / "py"],
                                     "--quantizer-python .*py is not an executable"),
        "missing converter python": (["--model", shared, "--tflite-converter-python", tmp / "py"],
                                     "--tflite-converter-python .*py is not an executable .*TFLite"),
    }


@pytest.mark.parametrize("case", ["two models, one name", "export-only of two models",
                                  "tflite named like no model", "int8 tflite named like no model",
                                  "missing model", "corrupt onnx", "wrong input shape",
                                  "unknown variant", "missing data dir",
                                  "data dir without splits", "data dir is a file", "bad profile",
                                  "bad threads", "missing tflite", "missing quantizer python",
                                  "missing converter python"])
def test_bad_input_one_line_exit_2_nothing_written(bench_run, shared_int8, tmp_path, case):
    args, pattern = _bad_inputs(tmp_path, shared_int8)[case]
    out = tmp_path / "out"
    profile = [] if "--profile" in args else ["--profile", "smoke"]
    r = bench_run(*args, *profile, "--out", out)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in r.out + r.err
    assert not out.exists()


def test_out_that_is_a_file_is_refused(bench_run, shared_int8, tmp_path):
    out = tmp_path / "out"
    out.write_text("precious")
    r = bench_run("--model", shared_int8, "--variants", "onnx-cpu", "--out", out)
    assert r.code == 2 and r.err.startswith("error: --out") and out.read_text() == "precious"


def test_help_explains_variants_and_exit_codes(bench_run):
    with pytest.raises(SystemExit) as exc:
        bench_run("--help")
    assert exc.value.code == 0


def test_python_dash_m_from_a_copied_benchmarks_folder(shared_int8, tmp_path, repo_root):
    """A node gets benchmarks/ copied and runs ``python -m servebench_engine`` inside it."""
    copy = tmp_path / "benchmarks"
    shutil.copytree(repo_root / "benchmarks", copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FOOD11_DATA_DIR")}
    which = "import servebench_engine as e; print(e.__file__)"
    origin = subprocess.run([sys.executable, "-c", which], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=60)
    assert origin.stdout.strip() == str(copy / "servebench_engine" / "__init__.py")
    proc = subprocess.run(
        [sys.executable, "-m", "servebench_engine", "--model", str(shared_int8), "--variants",
         "onnx-cpu", "--profile", "smoke", "--out", str(out)],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[1/1] onnx-cpu: ok p50=" in proc.stdout
    assert json.loads((out / "onnx-cpu.json").read_text())["status"] == "ok"


def test_export_only_writes_a_checked_onnx_and_benchmarks_nothing(bench_run, tmp_path):
    pytest.importorskip("torchvision", reason="the default model needs torch and torchvision")
    dest = tmp_path / "edge" / "model.onnx"
    dest.parent.mkdir()
    r = bench_run("--export-only", dest)
    assert r.code == 0, r.err
    assert f"exported {dest}" in r.out and "RANDOM weights" in r.out
    # No partial left; the torch.export twin beside it (tests/engine/test_program.py).
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.onnx", "model.pt2"]
    from servebench_engine.model import inspect_onnx

    assert inspect_onnx(dest)[:3] == (11, False, True)


def test_export_only_into_a_missing_folder_is_one_line(bench_run, tmp_path):
    r = bench_run("--export-only", tmp_path / "nowhere" / "model.onnx")
    assert r.code == 2 and r.err.count("\n") == 1 and "does not exist" in r.err
    assert list(tmp_path.iterdir()) == []
