"""Repeats run each variant in a fresh process with one artifacts folder: a second prepare, in a
new process, must serve what the first one made (no second quantisation) with the same info."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from servebench_engine.variants import reuse
from tests.support.variant_context import tiny_assets  # noqa: F401

# Builds the variant's Context in a fresh interpreter and prints what prepare + load gave.
PREPARE = """
import json, sys, time
from pathlib import Path
import numpy as np
from servebench_engine.context import Context, Split
from servebench_engine.profiles import PROFILES
from servebench_engine.settings import Settings
from servebench_engine.variants import load_class
from servebench_engine.results import jsonable

model, workdir, data, variant_id = sys.argv[1:5]
split = Split(np.load(data + ".images.npy"), np.load(data + ".labels.npy"))
ctx = Context(workdir=Path(workdir), profile=PROFILES["smoke"], model_onnx=Path(model),
              model_is_quantized=False, num_classes=11,
              splits={"validation": split, "evaluation": split}, settings=Settings(threads=1),
              log=lambda m: None)
variant = load_class(variant_id)()
started = time.perf_counter()
variant.prepare(ctx)
seconds = time.perf_counter() - started
served = variant.load(ctx)
print(json.dumps({"reused": variant.reused, "prepare_s": seconds, "info": jsonable(served.info),
                  "served": str(served.model_path)}))
"""


def _prepare_in_a_new_process(model, workdir, data, variant_id) -> dict:
    done = subprocess.run([sys.executable, "-c", PREPARE, str(model), str(workdir), str(data),
                           variant_id], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant_id", ["onnx-int8-static-aggressive", "onnx-optimized"])
def test_a_new_process_reuses_what_the_first_prepare_made(tiny_assets, tmp_path, variant_id):
    data = tmp_path / "validation"
    np.save(f"{data}.images.npy", tiny_assets.splits["validation"].images)
    np.save(f"{data}.labels.npy", tiny_assets.splits["validation"].labels)
    workdir = tmp_path / "artifacts"
    workdir.mkdir()

    first = _prepare_in_a_new_process(tiny_assets.onnx, workdir, data, variant_id)
    served = workdir / first["served"].rsplit("/", 1)[-1]
    made = served.stat().st_mtime_ns
    again = _prepare_in_a_new_process(tiny_assets.onnx, workdir, data, variant_id)

    assert (first["reused"], again["reused"]) == (False, True)
    assert again["info"] == first["info"] and again["served"] == first["served"]
    assert served.stat().st_mtime_ns == made  # not written again
    assert reuse.manifest_path(served).is_file()
    if variant_id.startswith("onnx-int8"):  # quantising takes seconds, reusing a hash
        assert again["prepare_s"] < first["prepare_s"] / 2

    # A manifest that no longer matches its file (a copy interrupted, a disk error) is not trusted.
    served.write_bytes(served.read_bytes()[:-100])
    third = _prepare_in_a_new_process(tiny_assets.onnx, workdir, data, variant_id)
    assert third["reused"] is False and served.stat().st_mtime_ns != made


def test_a_manifest_names_what_the_artifact_was_made_from(tmp_path):
    source, artifact = tmp_path / "model.onnx", tmp_path / "made.onnx"
    source.write_bytes(b"model")
    artifact.write_bytes(b"artifact")
    key = reuse.source_key("v", source, tolerance=0.05)
    assert reuse.remember(artifact, key, {"route": "r", "n": (1, 2)}) == {"route": "r", "n": [1, 2]}
    assert reuse.reusable(artifact, key) == {"route": "r", "n": [1, 2]}
    assert reuse.reusable(artifact, reuse.source_key("v", source, tolerance=0.01)) is None
    time.sleep(0.01)
    source.write_bytes(b"another model")
    assert reuse.reusable(artifact, reuse.source_key("v", source, tolerance=0.05)) is None
    reuse.manifest_path(artifact).write_text("{not json")
    assert reuse.reusable(artifact, key) is None
