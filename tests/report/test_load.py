"""Reading a run folder: bad files become visible problems, never crashes."""

from __future__ import annotations

import json

import pytest

from servebench.errors import UsageError
from servebench.schema import SCHEMA_VERSION
from servebench.report.load import load_run

from .runs import record, write_json, write_run


def _run(tmp_path, **hosts):
    return write_run(tmp_path, "20261123T191500Z-x", hosts)


def test_corrupt_and_newer_records_are_unreadable_the_rest_read(tmp_path):
    run = _run(tmp_path, h={"kind": "local", "records": [record("onnx-cpu"),
                                                         record("openvino", seed=1)]})
    (run / "h" / "openvino.json").write_text('{"schema_version": 1, "variant": ')
    newer = record("tflite")
    newer["schema_version"] = SCHEMA_VERSION + 1
    write_json(run / "h" / "tflite.json", newer)

    (host,) = load_run(run).hosts
    by = {r.variant: r for r in host.records}
    assert by["onnx-cpu"].status == "ok"
    assert by["openvino"].status == "unreadable"
    assert "corrupt JSON at line 1" in by["openvino"].reason
    assert by["tflite"].status == "unreadable"
    assert f"schema_version {SCHEMA_VERSION + 1} is newer than {SCHEMA_VERSION}" in by["tflite"].reason
    assert host.status == "ok"


def test_error_record_reason_carries_the_error_type(tmp_path):
    rec = record("torch-compile", status="error", reason="inductor needs a C compiler")
    run = _run(tmp_path, h={"kind": "local", "records": [rec]})
    (host,) = load_run(run).hosts
    assert host.records[0].reason == "RuntimeError: inductor needs a C compiler"


def test_failed_host_keeps_its_reason(tmp_path):
    run = _run(tmp_path, ok={"kind": "cpu_server", "records": [record("onnx-cpu")]},
               bad={"kind": "gpu_server", "status": "failed", "reason": "apt-get timed out"})
    hosts = {h.name: h for h in load_run(run).hosts}
    assert (hosts["bad"].status, hosts["bad"].reason) == ("failed", "apt-get timed out")
    assert hosts["ok"].status == "ok"


def test_host_without_records_is_failed(tmp_path):
    run = _run(tmp_path, h={"kind": "edge", "records": []},
               corrupt={"kind": "edge", "records": [record("tflite")]})
    (run / "corrupt" / "tflite.json").write_text("{")
    hosts = {h.name: h for h in load_run(run).hosts}
    assert hosts["h"].status == "failed"
    assert "no results were collected" in hosts["h"].reason
    assert hosts["corrupt"].status == "failed"
    assert "no readable variant records" in hosts["corrupt"].reason


def test_variant_in_suite_without_record_is_shown(tmp_path):
    run = _run(tmp_path, h={"kind": "local", "records": [record("onnx-cpu")]})
    suite = json.loads((run / "h" / "suite.json").read_text())
    suite["variants"].append("openvino")
    write_json(run / "h" / "suite.json", suite)
    (host,) = load_run(run).hosts
    assert [(r.variant, r.status) for r in host.records] == [("onnx-cpu", "ok"),
                                                             ("openvino", "unreadable")]


def test_host_listed_in_run_json_without_folder_is_failed(tmp_path):
    run = _run(tmp_path, h={"kind": "local", "records": [record("onnx-cpu")]})
    meta = json.loads((run / "run.json").read_text())
    meta["hosts"].append({"host": "pi5", "kind": "edge", "status": "failed", "stage": None,
                          "reason": None})
    write_json(run / "run.json", meta)
    hosts = {h.name: h for h in load_run(run).hosts}
    assert hosts["pi5"].status == "failed"
    assert "no results were collected" in hosts["pi5"].reason


def test_latest_symlink_and_missing_run_json(tmp_path):
    run = write_run(tmp_path, "20261123T191500Z-local-quick",
                    {"h": {"kind": "local", "records": [record("onnx-cpu")]}}, run_json=False)
    (tmp_path / "latest").symlink_to(run.name)
    loaded = load_run(tmp_path / "latest")
    assert loaded.run_id == "20261123T191500Z-local-quick"
    assert loaded.meta == {}


def test_corrupt_run_json_is_a_note(tmp_path):
    run = _run(tmp_path, h={"kind": "local", "records": [record("onnx-cpu")]})
    (run / "run.json").write_text("{")
    loaded = load_run(run)
    assert loaded.notes and loaded.notes[0].startswith("run.json: corrupt JSON")


@pytest.mark.parametrize("make", ["missing", "empty", "json-but-no-run"])
def test_not_a_run_folder_is_a_usage_error(tmp_path, make):
    target = tmp_path / "folder"
    if make != "missing":
        target.mkdir()
    if make == "json-but-no-run":
        write_json(target / "stray" / "onnx-cpu.json", record("onnx-cpu"))
    with pytest.raises(UsageError):
        load_run(target)
