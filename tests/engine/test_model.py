"""Model intake: ONNX validation, quantised-model detection, .pth and default export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from servebench_engine.errors import InputError
from servebench_engine.model import DataConfig, inspect_onnx, prepare_model

from .conftest import SHARED_INT8_SHA256, make_onnx


def test_shared_int8_model_is_valid_and_detected_as_quantised(shared_int8, tmp_path):
    m = prepare_model(shared_int8, tmp_path)
    assert (m.num_classes, m.is_quantized) == (11, True)
    assert m.sha256 == SHARED_INT8_SHA256 and m.random_weights is False
    assert m.onnx_path == shared_int8.resolve() and list(tmp_path.iterdir()) == []
    # Its name in records, record keys and artifact folders: the file's stem.
    assert m.name == m.describe()["name"] == "food11_quantized_aggressive"


def test_dynamic_int8_model_is_detected_too(shared_data):
    path = shared_data / "models" / "food11_quantized_dynamic.onnx"
    if not path.is_file():
        pytest.skip(f"{path} missing (see ../shared/data/README.md)")
    assert inspect_onnx(path).quantized is True


def test_float_model_with_a_fixed_batch_is_accepted_and_not_quantised(tmp_path):
    path = make_onnx(tmp_path / "fixed.onnx", [1, 3, 224, 224])
    assert inspect_onnx(path) == (11, False, False, DataConfig())


def test_a_given_onnx_of_another_static_size_brings_that_size(tmp_path):
    m = prepare_model(make_onnx(tmp_path / "small.onnx", ["N", 3, 160, 192]), tmp_path)
    assert m.data_config.input_size == (3, 160, 192)
    assert m.data_config.source == "onnx input shape"
    assert m.describe()["data_config"]["input_size"] == (3, 160, 192)
    # A symbolic size is served at the default 224.
    assert inspect_onnx(make_onnx(tmp_path / "any.onnx", ["N", 3, "H", "W"])).data_config.size \
        == (224, 224)


@pytest.mark.parametrize("shape", [["N", 1, 224, 224], ["N", 3, 224], ["N", 3, 4, 4]])
def test_wrong_input_shape_is_refused(tmp_path, shape):
    path = make_onnx(tmp_path / "bad.onnx", shape)
    with pytest.raises(InputError, match=r"expected \[N, 3, H, W\]|8 to 4096 pixels"):
        prepare_model(path, tmp_path)


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 100, b"ir_version: 8"])
def test_corrupt_onnx_is_refused(tmp_path, content):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a valid ONNX model"):
        prepare_model(path, tmp_path)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        prepare_model(tmp_path / "nope.onnx", tmp_path)
    (tmp_path / "model.h5").write_bytes(b"x")
    with pytest.raises(InputError, match="neither .onnx nor .pth"):
        prepare_model(tmp_path / "model.h5", tmp_path)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch",
                               reason="torch not installed: .pth and the default model need it")


def _check_export(path, net, torch):
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_default_model_is_random_mobilenet_exported_with_dynamic_batch(tmp_path, torch):
    m = prepare_model(None, tmp_path)
    assert (m.source, m.random_weights, m.num_classes, m.is_quantized) == \
        ("random-init", True, 11, False)
    assert m.name == "random-init"
    net = m.torch_model()
    assert type(net).__name__ == "MobileNetV2" and net.classifier[1].out_features == 11
    _check_export(m.onnx_path, net, torch)
    # BatchNorm carries real statistics: the random network tells images apart (images of
    # different brightness; plain noise images all look alike to any network).
    noise = np.random.default_rng(1).standard_normal((8, 3, 224, 224), dtype=np.float32)
    x = torch.from_numpy(noise + np.linspace(-2, 2, 8, dtype=np.float32).reshape(8, 1, 1, 1))
    with torch.no_grad():
        logits = net(x)
    assert logits.abs().max() > 1e-3 and len(set(logits.argmax(1).tolist())) > 1
    # An edge device handed only the exported file still knows its weights are random.
    assert prepare_model(m.onnx_path, tmp_path / "again").random_weights is True
    # Each call builds a fresh module with the same weights as the exported graph.
    other = m.torch_model()
    assert other is not net
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  other.state_dict().values(), strict=True))


def test_pickled_pth_is_loaded_and_exported_when_pickles_are_allowed(tmp_path, torch):
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2(weights=None, num_classes=11).eval()
    torch.save(net, tmp_path / "food11.pth")  # the whole module, as the tutorial saves it
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(InputError, match="would run code from the file"):
        prepare_model(tmp_path / "food11.pth", staging)
    m = prepare_model(tmp_path / "food11.pth", staging, allow_pickle=True)
    assert (m.format, m.random_weights, m.num_classes, m.name) == ("pth", False, 11, "food11")
    _check_export(m.onnx_path, net, torch)


def test_mobilenet_state_dict_is_taken_as_data(tmp_path, torch):
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2(weights=None, num_classes=5).eval()
    torch.save(net.state_dict(), tmp_path / "sd.pth")
    m = prepare_model(tmp_path / "sd.pth", tmp_path)
    assert (m.format, m.num_classes) == ("pth", 5)
    _check_export(m.onnx_path, net, torch)


def test_other_state_dicts_and_objects_are_refused_with_advice(tmp_path, torch):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "sd.pth")
    with pytest.raises(InputError, match="not torchvision's MobileNetV2"):
        prepare_model(tmp_path / "sd.pth", tmp_path)
    torch.save(7, tmp_path / "int.pth")
    with pytest.raises(InputError, match="holds a int, not a model"):
        prepare_model(tmp_path / "int.pth", tmp_path)


def test_workers_rebuild_the_random_network_from_its_weights_as_data(tmp_path, torch):
    from servebench_engine.model import torch_factory, torch_source

    m = prepare_model(None, tmp_path)
    source = torch_source(m, tmp_path)
    assert set(source) == {"state_dict", "architecture", "num_classes", "reparameterized"}
    # Plain weights: the safe unpickler reads them.
    assert all(isinstance(v, torch.Tensor)
               for v in torch.load(source["state_dict"], weights_only=True).values())
    rebuilt, original = torch_factory(source)(), m.torch_model()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), original(x))


def test_a_timm_model_by_name_with_random_weights_brings_its_data_config(tmp_path, torch):
    pytest.importorskip("timm", reason="timm not installed")
    from servebench_engine.model import torch_factory, torch_source

    m = prepare_model(Path("timm:mobilevit_xxs:random"), tmp_path)
    assert (m.name, m.format, m.source, m.random_weights, m.num_classes) == \
        ("mobilevit_xxs", "timm", "timm:mobilevit_xxs:random", True, 1000)
    assert (m.data_config.size, m.data_config.interpolation, m.data_config.source) == \
        ((256, 256), "bicubic", "timm")
    # The exported ONNX takes 256x256 and carries the config: a node given only it agrees.
    again = prepare_model(m.onnx_path, tmp_path / "again")
    assert again.random_weights is True and again.data_config == \
        DataConfig(**{**m.data_config.describe(), "source": "onnx metadata"})
    session = ort.InferenceSession(str(m.onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 256, 256)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    # A worker child rebuilds the same network from its weights, as data.
    rebuilt = torch_factory(torch_source(m, tmp_path))()
    with torch.no_grad():
        np.testing.assert_allclose(got, rebuilt(torch.from_numpy(x)).numpy(), atol=1e-4)


@pytest.mark.parametrize("spec, words", [
    ("timm:mobilevit_xxs", "cannot be reached from here"),
    ("timm:mobilevitt_xxs:random", "did you mean mobilevit_xxs"),
    ("timm:", "expected timm:NAME"),
])
def test_models_by_name_that_cannot_be_had_are_one_line(tmp_path, monkeypatch, spec, words):
    pytest.importorskip("timm", reason="timm not installed")
    # The hub at a closed local port: pretrained weights cannot be fetched, at once.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(InputError, match=words) as caught:
        prepare_model(Path(spec), tmp_path)
    assert "\n" not in str(caught.value)
    if spec == "timm:mobilevit_xxs":
        assert "timm:mobilevit_xxs:random" in str(caught.value)


def test_models_of_one_run_must_share_their_preprocessing(tmp_path):
    from servebench_engine.model import common_data_config

    a = prepare_model(make_onnx(tmp_path / "a.onnx", ["N", 3, 224, 224]), tmp_path)
    b = prepare_model(make_onnx(tmp_path / "b.onnx", ["N", 3, "H", "W"]), tmp_path)
    c = prepare_model(make_onnx(tmp_path / "c.onnx", ["N", 3, 256, 256]), tmp_path)
    assert common_data_config([a, b]) == DataConfig()
    with pytest.raises(InputError, match=r"a: 224x224 bilinear.*c: 256x256 bilinear"):
        common_data_config([a, c])


def test_every_conv_weight_of_an_export_is_an_initializer_of_its_own(tmp_path, torch):
    """A fresh network's equal weights (zero biases) are stored once by the exporter, the rest
    as Identity nodes; the TFLite route (onnx2torch) needs each Conv's weights as initializers."""
    pytest.importorskip("timm", reason="timm not installed")
    m = prepare_model(Path("timm:tinynet_e:random"), tmp_path)
    assert m.data_config.size == (106, 106)
    graph = onnx.load(str(m.onnx_path)).graph
    inits = {i.name for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(name in inits for n in convs for name in n.input[1:])
    assert not [n for n in graph.node if n.op_type == "Identity" and n.input[0] in inits]


def test_a_timm_model_with_training_branches_is_fused_before_export(tmp_path, torch):
    """MobileOne trains with parallel conv/BN branches and serves one conv each: the ONNX, and the
    network a worker child rebuilds from its weights, are the fused one (timm's
    reparameterize_model), and the record counts the modules fused."""
    pytest.importorskip("timm", reason="timm not installed")
    from servebench_engine.model import torch_factory, torch_source
    import timm

    m = prepare_model(Path("timm:mobileone_s0:random"), tmp_path)
    assert m.describe()["reparameterized"] == m.reparameterized > 0
    unfused = sum(isinstance(x, torch.nn.Conv2d) for x in timm.create_model("mobileone_s0").modules())
    rebuilt = torch_factory(torch_source(m, tmp_path))()
    fused = sum(isinstance(x, torch.nn.Conv2d) for x in rebuilt.modules())
    convs = [n for n in onnx.load(str(m.onnx_path)).graph.node if n.op_type == "Conv"]
    assert len(convs) == fused < unfused
    session = ort.InferenceSession(str(m.onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0],
                                   rebuilt(torch.from_numpy(x)).numpy(), atol=1e-3)
    # A model with nothing to fuse is left as it is, and says so.
    (tmp_path / "t").mkdir()
    assert prepare_model(Path("timm:tinynet_e:random"), tmp_path / "t").reparameterized == 0
