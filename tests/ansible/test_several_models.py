"""Several models in one run (issue 12): bench.yml with -e models= the two shared INT8 Food-11
models, on localhost (with -e repeats) and on a node over SSH: each model's records come back
(<model>__<variant>.json, fetched as the engine's suite.json lists them), run.json names both,
the report has both; a node gets each model from the prepare play, and no .tflite of an INT8
model."""

from __future__ import annotations

import pytest

from .conftest import LOCAL_INVENTORY, bench, node_vars, read_json, write_inventory

pytestmark = pytest.mark.slow

MODELS = ("food11_quantized_aggressive", "food11_quantized_dynamic")


def test_two_int8_models_side_by_side_come_back_and_are_reported(tmp_path, shared_data):
    paths = [str(shared_data / "models" / f"{name}.onnx") for name in MODELS]

    run = bench(tmp_path, [LOCAL_INVENTORY], extravars={
        "profile": "smoke", "variants": "onnx-cpu", "models": ",".join(paths), "repeats": 2})

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    host = run.run_dir / "localhost"
    for name, path in zip(MODELS, paths):
        record = read_json(host / f"{name}__onnx-cpu.json")
        assert record["status"] == "ok", record.get("reason")
        assert record["model"]["name"] == name and record["model"]["source"] == path
        # An INT8 model is served as given, and -e repeats reached the engine.
        assert record["model"]["quantized"] is True
        assert record["repeats"]["count"] == 2
    assert not (host / "onnx-cpu.json").exists()
    suite = read_json(host / "suite.json")
    assert set(suite["results"]) == {f"{name}__onnx-cpu" for name in MODELS}
    meta = read_json(run.run_dir / "run.json")
    assert meta["models"] == paths and meta["repeats"] == 2
    report = (run.run_dir / "report.md").read_text()
    assert all(name in report for name in MODELS), report[:2000]
    # One progress line per record as it landed, under the engine's names for them.
    waits = [e["res"]["item"] for e in run.task_results(
        "Benchmark | wait for each variant's record (local)") if "item" in e["res"]]
    assert waits == [f"{name}__onnx-cpu" for name in MODELS]


def test_a_node_gets_each_model_prepared_and_skips_tflite_for_the_int8_ones(
        tmp_path, ssh_hosts, ssh_key, shared_data):
    paths = [str(shared_data / "models" / f"{name}.onnx") for name in MODELS]
    node = ssh_hosts("127.0.0.2")
    inventory = write_inventory(tmp_path / "chi_test.yml", {"edge_devices": {"node1": node_vars(
        node, ssh_key, tmp_path / "node1",
        benchmark_runs=[{"runtime": "arm", "variants": ["onnx-cpu", "tflite"]}])}})

    run = bench(tmp_path, [LOCAL_INVENTORY, inventory], extravars={
        "profile": "smoke", "models": paths, "tflite_model": ""})

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    host = run.run_dir / "node1"
    for name in MODELS:
        record = read_json(host / f"{name}__onnx-cpu.json")
        assert record["status"] == "ok", record.get("reason")
        # The node served the very file given (an .onnx is shipped as it is).
        assert record["model"]["name"] == name and record["model"]["quantized"] is True
        # No float .tflite can be made of an INT8 ONNX: skipped, saying so.
        tflite = read_json(host / f"{name}__tflite.json")
        assert tflite["status"] == "skipped" and "INT8" in tflite["reason"], tflite["reason"]
    skipped = run.task_results("Prepare | the nodes skip tflite for the INT8 models")
    assert sorted(e["res"]["item"][0]["name"] for e in skipped if "item" in e["res"]) == list(MODELS)
    assert not list((run.run_dir / "prepared").glob("*.tflite"))
