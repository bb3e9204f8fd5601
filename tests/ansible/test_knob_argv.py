"""bench-run's argv is built from the engine's settings table (playbooks/filter_plugins/engine.py):
what the role passes parses, with bench-run's own parser, back into the very settings it meant;
values the engine would refuse are named by the plan before anything runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from servebench_engine.cli import build_parser
from servebench_engine.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _filters():
    spec = importlib.util.spec_from_file_location(
        "engine_filters", REPO / "playbooks" / "filter_plugins" / "engine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


engine = _filters()


@pytest.fixture(scope="module")
def table() -> dict:
    # What the plan reads: the engine's own command, not an import of it.
    done = subprocess.run([sys.executable, "-m", "servebench_engine.settings"], cwd=REPO / "benchmarks",
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_the_argv_parses_back_into_the_settings_it_was_built_from(table, tmp_path):
    knobs = {"profile": "smoke", "repeats": " 2 ", "benchmark_threads": "1",
             "model_allow_pickle": "true", "benchmark_prepare_jobs": ""}
    own = {"out": str(tmp_path / "out"), "host_label": "node1", "host_kind": "edge",
           "model": [str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")], "data": "",
           "tflite_model": [], "quantizer_python": "", "tflite_converter_python": "/x/python"}

    argv = engine.engine_argv(table["settings"], knobs, own)
    got = Settings.from_args(build_parser().parse_args(argv))

    assert (got.profile, got.repeats, got.threads, got.allow_pickle) == ("smoke", 2, 1, True)
    assert got.prepare_jobs is None and got.data is None and got.quantizer_python is None
    assert [str(m) for m in got.model] == own["model"]
    assert (str(got.out), got.host_label, got.host_kind) == (own["out"], "node1", "edge")
    assert got.tflite_converter_python == "/x/python"
    # In the table's order, one flag per model, a bool as a bare flag.
    assert argv[:4] == ["--model", own["model"][0], "--model", own["model"][1]]
    assert "--allow-pickle" in argv and "true" not in argv


def test_a_false_bool_and_unset_knobs_leave_their_flags_out(table):
    argv = engine.engine_argv(table["settings"], {"model_allow_pickle": "no", "repeats": ""}, {})
    assert argv == []


def test_a_setting_added_to_the_table_reaches_the_argv(table):
    extra = {"name": "probe", "flag": "--probe", "knob": "benchmark_probe", "type": "int",
             "repeatable": False, "default": None, "min": 1, "max": 4, "choices": None, "help": "x"}
    settings = table["settings"] + [extra]
    assert engine.engine_argv(settings, {"benchmark_probe": 3}, {}) == ["--probe", "3"]
    assert engine.engine_knob_errors(settings, {"benchmark_probe": 9}) == [
        "benchmark_probe must be a whole number from 1 to 4 (got 9; bench-run --probe; "
        "leave it unset for the engine's default)"]


@pytest.mark.parametrize("knob, value, says", [
    ("repeats", "1e20", "repeats must be a whole number from 1 to 100"),
    ("repeats", "100000000000000000000", "repeats must be a whole number from 1 to 100"),
    ("repeats", "0", "repeats must be a whole number from 1 to 100"),
    ("benchmark_threads", "999999", "benchmark_threads must be a whole number from 1 to 4"),
    ("benchmark_threads", True, "benchmark_threads must be a whole number"),
    ("profile", "fast", "profile must be one of full, quick, smoke"),
    ("model_allow_pickle", "maybe", "model_allow_pickle must be true or false"),
])
def test_values_the_engine_would_refuse_are_named(table, knob, value, says):
    errors = engine.engine_knob_errors(table["settings"], {knob: value}, {"benchmark_threads": 4})
    assert len(errors) == 1 and errors[0].startswith(says), errors


def test_good_values_pass(table):
    good = {"repeats": 3, "benchmark_threads": "4", "profile": "quick", "model_allow_pickle": False,
            "benchmark_prepare_jobs": ""}
    assert engine.engine_knob_errors(table["settings"], good, {"benchmark_threads": 4}) == []
