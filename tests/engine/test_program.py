"""The torch.export twin of an exported ONNX (model.export_program / program_beside): a node
given the prepared .onnx with its .pt2 serves the same weights in the torch variants, with
torch alone; a .pt2 saved from other weights is never taken for the twin."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import onnxruntime as ort
import pytest

from servebench_engine.cli import export_only
from servebench_engine.model import PROGRAM_ONNX_KEY, prepare_model, program_beside, sha256_of


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("torchvision", reason="the default model needs torch and torchvision")
    dest = tmp_path_factory.mktemp("prepared") / "random-init-mobilenet_v2.onnx"
    assert export_only(None, dest) == 0
    return dest


def test_the_twin_serves_the_onnx_weights(exported, tmp_path):
    import torch

    program = exported.with_suffix(".pt2")
    assert program_beside(exported, sha256_of(exported)) == program
    model = prepare_model(exported, tmp_path)
    assert model.torch_model.path == program.resolve()
    assert model.describe()["torch_program"] == program.name
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32)
    with torch.inference_mode():
        eager = model.torch_model()(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(eager, onnx_out, rtol=1e-3, atol=1e-4)


def test_a_program_from_other_weights_is_ignored(exported, tmp_path):
    onnx = tmp_path / exported.name
    shutil.copyfile(exported, onnx)
    # The same archive, naming another ONNX (as a .pt2 left from an earlier export would).
    with zipfile.ZipFile(exported.with_suffix(".pt2")) as src, \
            zipfile.ZipFile(onnx.with_suffix(".pt2"), "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"0" * 64 if item.filename.endswith(f"/extra/{PROGRAM_ONNX_KEY}") else data)
    assert program_beside(onnx, sha256_of(onnx)) is None
    assert prepare_model(onnx, tmp_path / "staging").torch_model is None
    onnx.with_suffix(".pt2").write_bytes(b"not a zip")
    assert program_beside(onnx, sha256_of(onnx)) is None
