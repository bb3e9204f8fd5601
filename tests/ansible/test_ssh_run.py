"""bench.yml for real over SSH against sshd test hosts on loopback (127.0.0.x).

What runs for real: plan, the gate, the food11_dataset role (from a local archive: checksum,
unpack, class_NN layout), the benchmark role (ships benchmarks/ and the model over SSH, runs
bench-run natively with this venv's Python, waits per variant), collect (fetch), the report.
What cannot: Docker images, the NVIDIA toolkit, pip installs on the node (no Docker engine, no
GPU, no internet here) - those roles are exercised in check mode in test_roles_check.py.
"""

from __future__ import annotations

import hashlib

import pytest

from .conftest import LOCAL_INVENTORY, bench, food11_archive, node_vars, read_json, write_inventory

pytestmark = pytest.mark.slow

MODEL = "models/food11_quantized_aggressive.onnx"
# The quick profile's load mode (about a minute per node here, two nodes sharing two cores) is
# proven end to end in test_local_run.py; these tests are about shipping, fetching and failures.
NO_LOAD = {"benchmark_load_variants": "none"}


def test_bench_over_ssh_ships_runs_fetches_and_setup_is_idempotent(tmp_path, ssh_hosts, ssh_key,
                                                                    shared_data):
    hosts = {name: ssh_hosts(addr) for name, addr in (("node1", "127.0.0.2"), ("node2", "127.0.0.3"))}
    archive = food11_archive(tmp_path / "food11.zip")
    inventory = write_inventory(tmp_path / "chi_test.yml", {
        "edge_devices": {name: node_vars(h, ssh_key, tmp_path / name) for name, h in hosts.items()},
    })
    extravars = {
        "profile": "quick", **NO_LOAD,
        "model": str(shared_data / MODEL),
        "tflite_model": "",
        "food11_dataset_enabled": True,
        "food11_dataset_archive": str(archive),
        "food11_dataset_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
    }
    # local.yml too, as `ansible-playbook bench.yml` reads inventory/: with testbed hosts present,
    # localhost must be the control node only.
    run = bench(tmp_path, [LOCAL_INVENTORY, inventory], extravars=extravars)

    assert run.ok, (run.rc, run.status, run.artifact_dir)
    assert (run.artifact_dir / "rc").read_text().strip() == "0"
    assert (run.artifact_dir / "status").read_text().strip() == "successful"
    assert any((run.artifact_dir / "job_events").glob("*.json"))
    run_dir = run.run_dir
    assert run_dir.name.endswith("-chi-quick") and run.artifact_dir == run_dir / "runner"
    assert not (run_dir / "localhost").exists(), "localhost was benchmarked beside testbed hosts"

    for name in hosts:
        record = read_json(run_dir / name / "onnx-cpu.json")
        assert record["status"] == "ok", record.get("reason")
        assert record["host"] == name and record["host_kind"] == "edge"
        assert record["latency_ms"]["p50"] > 0 and record["batch_throughput"] > 0
        assert record["load"] is None, "benchmark_load_variants=none did not reach the node"
        # The engine read the tree the dataset role laid out, not its synthetic stand-in.
        assert record["data"]["source"] == "food11" and not record["data"]["synthetic"]
        assert record["data"]["counts"]["evaluation"] == 22
        assert read_json(run_dir / name / "host_status.json")["status"] == "ok"
        assert read_json(run_dir / name / "suite.json")["status"] == "complete"
        assert "onnx-cpu: ok" in (run_dir / name / "runs" / "arm" / "engine.log").read_text()
        laid_out = tmp_path / name / "food11" / "validation" / "class_10"
        assert sorted(p.name for p in laid_out.iterdir()) == ["10_0.jpg", "10_1.jpg"]

    meta = read_json(run_dir / "run.json")
    assert {h["host"] for h in meta["hosts"]} == set(hosts)
    assert (tmp_path / "results" / "latest").resolve() == run_dir
    report = (run_dir / "report.md").read_text()
    assert "node1" in report and "node2" in report
    assert (run_dir / "report.html").is_file() and any((run_dir / "plots").glob("*.png"))

    # Progress: one result per variant as its record landed.
    waits = run.task_results("Benchmark | wait for each variant's record (arm)")
    assert {(w["host"], w["res"]["item"]) for w in waits if "item" in w["res"]} == {("node1", "onnx-cpu"), ("node2", "onnx-cpu")}
    # The dataset was really laid out the first time...
    layout = run.task_results("Food-11 | lay out class_00..class_10 per split", host="node1")
    assert layout and layout[0]["res"]["changed"]

    # ...and a second run of the setup stage changes nothing.
    again = bench(tmp_path, [LOCAL_INVENTORY, inventory], extravars=extravars, tags=["setup"],
                  artifact_dir=run_dir / "runner-setup-again")
    assert again.ok, (again.rc, again.status)
    assert again.stats["ok"].get("node1") and again.stats["ok"].get("node2")
    assert again.changed("node1") == 0 and again.changed("node2") == 0, again.stats["changed"]


def test_failed_hosts_keep_the_others_results_and_the_report(tmp_path, ssh_hosts, ssh_key, shared_data):
    good = ssh_hosts("127.0.0.2")
    crash = ssh_hosts("127.0.0.3")
    gone = ssh_hosts("127.0.0.4")
    gone.stop()  # its address and port now refuse connections: unreachable
    inventory = write_inventory(tmp_path / "chi_test.yml", {"edge_devices": {
        "good": node_vars(good, ssh_key, tmp_path / "good", benchmark_runs=[
            {"runtime": "arm", "variants": ["onnx-cpu", "tflite", "tflite-int8"]}]),
        # bench-run exits 2 (bad input) on a model path that does not exist on the node.
        "crash": node_vars(crash, ssh_key, tmp_path / "crash",
                           benchmark_model_on_node=str(tmp_path / "no-such-model.onnx")),
        "gone": node_vars(gone, ssh_key, tmp_path / "gone"),
    }})
    # No model: the prepare play exports the random-init MobileNetV2 once, on the control node,
    # and the edge devices get that ONNX (they have no PyTorch), and its .tflite, converted
    # there in .venv-litert (`make test` builds it), and that .tflite quantised to INT8 there.
    run = bench(tmp_path, [LOCAL_INVENTORY, inventory], extravars={
        "profile": "quick", **NO_LOAD, "tflite_model": "", "bench_connect_timeout": 5,
    })

    # The run says it failed, but only at the very end.
    assert run.rc != 0 and run.status == "failed"
    run_dir = run.run_dir
    record = read_json(run_dir / "good" / "onnx-cpu.json")
    assert record["status"] == "ok", record.get("reason")
    prepared = run_dir / "prepared" / "random-init-mobilenet_v2.onnx"
    assert record["model"]["sha256"] == hashlib.sha256(prepared.read_bytes()).hexdigest()
    assert record["model"]["format"] == "onnx" and record["model"]["source"].endswith("/random-init-mobilenet_v2.onnx")
    # The ONNX carries the random-init mark, so the edge's record still says so.
    assert record["model"]["random_weights"] is True
    tflite = read_json(run_dir / "good" / "tflite.json")
    converted = run_dir / "prepared" / "random-init-mobilenet_v2.tflite"
    assert tflite["status"] == "ok", tflite.get("reason")
    assert tflite["model_size_bytes"] == converted.stat().st_size
    assert tflite["info"]["input_layout"] == "NCHW" and tflite["accuracy"]["total"] > 0
    # The INT8 .tflite made on the control node, served by the node after its own gate against
    # the float .tflite shipped beside it.
    int8 = read_json(run_dir / "good" / "tflite-int8.json")
    quantised = run_dir / "prepared" / "random-init-mobilenet_v2.int8.tflite"
    assert int8["status"] == "ok", int8.get("reason")
    assert int8["model_size_bytes"] == quantised.stat().st_size < converted.stat().st_size / 3
    assert (int8["info"]["tflite_int8_source"], int8["info"]["input_dtype"]) == ("given", "int8")
    assert int8["info"]["tolerance_checked"] is True and int8["info"]["evaluation_images"] > 0
    # What the prepare stage made, each file with its digest and how it was made.
    made = {f["file"]: f for f in read_json(run_dir / "prepared" / "artifacts.json")["files"]}
    assert set(made) == {f"random-init-mobilenet_v2{suffix}" for suffix in (
        ".onnx", ".pt2", ".tflite", ".calibration.npy", ".int8.tflite")}
    for name, entry in made.items():
        content = (run_dir / "prepared" / name).read_bytes()
        assert (entry["size_bytes"], entry["sha256"]) == (len(content), hashlib.sha256(content).hexdigest())
    assert made[quantised.name]["made"]["route"] == "float .tflite -> ai-edge-quantizer (static_wi8_ai8)"
    assert made[quantised.name]["made"]["tool_versions"]["ai_edge_quantizer"] == "0.10.0"
    assert made[converted.name]["made"]["route"] == "onnx -> onnx2torch -> litert-torch"
    assert made["random-init-mobilenet_v2.calibration.npy"]["made"]["details"]["profile"] == "quick"
    assert read_json(run_dir / "good" / "host_status.json")["status"] == "ok"

    crashed = read_json(run_dir / "crash" / "host_status.json")
    assert crashed["status"] == "failed" and crashed["stage"] == "benchmark"
    assert "exited 2" in crashed["reason"] and "does not exist" in crashed["reason"]
    assert not (run_dir / "crash" / "onnx-cpu.json").exists()

    unreachable = read_json(run_dir / "gone" / "host_status.json")
    assert unreachable["status"] == "failed" and unreachable["stage"] == "setup"
    assert "unreachable" in unreachable["reason"]

    statuses = {h["host"]: h["status"] for h in read_json(run_dir / "run.json")["hosts"]}
    assert statuses == {"good": "ok", "crash": "failed", "gone": "failed"}
    report = (run_dir / "report.md").read_text()
    assert "crash" in report and "gone" in report
    final = run.task_results("Report | fail the run if a host failed (results and report are written)")
    assert final and "crash" in final[0]["res"]["msg"] and "gone" in final[0]["res"]["msg"]
