"""servebench.prepared writes results/<run>/prepared/artifacts.json: every file the prepare play
made for the nodes, its size and sha256, and how it was made (the helpers' own JSON lines, the
engine's routes), whatever the kind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from servebench.prepared import ARTIFACTS_FILE

QUANTISED = {"route": "float .tflite -> ai-edge-quantizer (static_wi8_ai8)", "seconds": 1.9,
             "recipe": "static_wi8_ai8", "calibration_images": 16,
             "versions": {"ai_edge_quantizer": "0.10.0", "ai_edge_litert": "2.3.0"}}


def _prepare(folder, made: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "servebench.prepared", str(folder)],
                          input=json.dumps(made), capture_output=True, text=True, timeout=60)


def test_each_file_is_listed_with_its_digest_and_how_it_was_made(tmp_path):
    names = {"m.onnx": b"onnx", "m.pt2": b"program", "m.tflite": b"float", "m.int8.tflite": b"int8",
             "m.calibration.npy": b"images", "m.xml": b"an IR nobody named yet"}
    for name, content in names.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / ".m.tflite.lock").write_bytes(b"")          # not an artifact
    (tmp_path / "m.int8.tflite.part").write_bytes(b"half")  # a write that never finished

    done = _prepare(tmp_path, {"m.int8.tflite": QUANTISED,
                               "m.calibration.npy": {"profile": "quick", "data": "synthetic"}})

    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / ARTIFACTS_FILE).read_text())
    files = {f["file"]: f for f in doc["files"]}
    assert doc["schema_version"] == 1 and set(files) == set(names)
    for name, content in names.items():
        assert files[name]["size_bytes"] == len(content)
        assert files[name]["sha256"] == hashlib.sha256(content).hexdigest()
        assert files[name]["model"] == "m"
    int8 = files["m.int8.tflite"]
    assert int8["kind"] == "tflite-int8" and int8["made"]["route"] == QUANTISED["route"]
    assert int8["made"]["tool_versions"] == QUANTISED["versions"]
    assert int8["made"]["details"]["calibration_images"] == 16
    # The engine's own files: its route for the kind and this Python's versions.
    onnx = files["m.onnx"]["made"]
    assert onnx["route"].startswith("servebench_engine --export-only")
    assert set(onnx["tool_versions"]) == {"python", "torch", "onnx"}
    assert files["m.calibration.npy"]["made"]["details"] == {"profile": "quick", "data": "synthetic"}
    # A helper's file the play has no line for was made by an earlier attempt: said, not guessed.
    assert files["m.tflite"]["made"]["route"].startswith("made by an earlier attempt")
    assert files["m.tflite"]["made"]["tool_versions"] is None
    assert files["m.xml"]["kind"] == "other"
    assert oct((tmp_path / ARTIFACTS_FILE).stat().st_mode & 0o777) == "0o644"


def test_stdin_that_is_not_an_object_of_objects_is_one_line_and_writes_nothing(tmp_path):
    done = _prepare(tmp_path, ["m.onnx"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: stdin must be a JSON object of file name -> object"]
    assert not (tmp_path / ARTIFACTS_FILE).exists()
