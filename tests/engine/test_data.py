"""Data: preprocessing equal to torchvision's, the synthetic tree, the per-class cap, bad trees."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from servebench_engine.data import (SPLITS, SYNTHETIC_MAX_CLASSES, check_tree, load_dataset,
                                    make_synthetic_tree, preprocess)
from servebench_engine.errors import InputError
from servebench_engine.model import DataConfig

from .conftest import make_onnx


def torchvision_reference(path: Path) -> np.ndarray:
    transforms = pytest.importorskip(
        "torchvision.transforms", reason="torchvision not installed: it is the reference")
    pipeline = transforms.Compose([
        transforms.Resize(224), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    with Image.open(path) as im:
        return pipeline(im.convert("RGB")).numpy()


@pytest.mark.parametrize("size", [(320, 240), (240, 333), (224, 224), (150, 100)])
def test_preprocess_matches_torchvision(tmp_path, size):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.jpg"
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    ours = preprocess(path)
    assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, torchvision_reference(path), atol=1e-5)


def test_preprocess_matches_torchvision_on_a_real_photo(shared_data):
    photo = shared_data / "images" / "parrot.jpg"
    np.testing.assert_allclose(preprocess(photo), torchvision_reference(photo), atol=1e-5)


def test_synthetic_tree_layout_and_determinism(tmp_path):
    a = make_synthetic_tree(tmp_path / "a", num_classes=11, per_class=2)
    b = make_synthetic_tree(tmp_path / "b", num_classes=11, per_class=2)
    for split in SPLITS:
        classes = sorted(p.name for p in (a / split).iterdir())
        assert classes == [f"class_{i:02d}" for i in range(11)]
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(files_a) == 3 * 11 * 2
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.jpg"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    with Image.open(a / files_a[0]) as im:
        assert im.format == "JPEG"


def test_load_dataset_caps_per_class_and_labels_in_folder_order(tmp_path):
    root = make_synthetic_tree(tmp_path / "t", num_classes=3, per_class=5)
    ds = load_dataset(root, per_class=2, synthetic=True)
    assert ds.classes == ["class_00", "class_01", "class_02"]
    assert ds.counts == {"validation": 6, "evaluation": 6}
    assert ds.available == {"validation": 15, "evaluation": 15}
    ev = ds.splits["evaluation"]
    assert ev.images.shape == (6, 3, 224, 224)
    # Interleaved by class: every prefix (a calibration set, say) is balanced.
    assert ev.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert [p.parent.name for p in ev.paths] == [f"class_{lbl:02d}" for lbl in ev.labels]
    # The pick is the same every run.
    assert load_dataset(root, per_class=2).splits["evaluation"].paths == ev.paths
    assert ds.describe()["synthetic"] is True and ds.describe()["root"] is None


def test_bad_trees_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        check_tree(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(InputError, match="validation"):
        check_tree(tmp_path / "flat")
    root = make_synthetic_tree(tmp_path / "t", num_classes=2, per_class=1)
    for f in (root / "evaluation" / "class_01").iterdir():
        f.unlink()
    with pytest.raises(InputError, match="holds no .jpg"):
        check_tree(root)


def test_unreadable_image_is_an_input_error(tmp_path):
    root = make_synthetic_tree(tmp_path / "t", num_classes=2, per_class=1)
    next((root / "evaluation" / "class_00").iterdir()).write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot read image"):
        load_dataset(root, per_class=4)


@pytest.mark.parametrize("num_classes", [100, 200_000])
def test_a_synthetic_tree_for_many_classes_is_a_bounded_sample(tmp_path, num_classes):
    root = make_synthetic_tree(tmp_path / "t", num_classes=num_classes, per_class=1)
    assert len(list(root.rglob("*.jpg"))) == len(SPLITS) * SYNTHETIC_MAX_CLASSES
    ds = load_dataset(root, per_class=4, synthetic=True)
    # The model's class count stands; the labels are the sampled classes' own ids.
    assert len(ds.classes) == num_classes
    ids = ds.describe()["class_sample"]["class_ids"]
    assert len(ids) == SYNTHETIC_MAX_CLASSES and ids[0] == 0 and max(ids) < num_classes
    assert sorted(set(ds.splits["evaluation"].labels.tolist())) == ids
    assert "capped at" in ds.describe()["class_sample"]["reason"]


def test_few_classes_are_all_made_and_say_no_sample(tmp_path):
    ds = load_dataset(make_synthetic_tree(tmp_path / "t", num_classes=11, per_class=1),
                      per_class=1, synthetic=True)
    assert ds.describe()["class_sample"] is None and len(ds.classes) == 11


def _png_claiming(path: Path, width: int, height: int, *, good_crc: bool = True) -> Path:
    """A small PNG whose header claims ``width`` x ``height``: a decompression bomb's header
    without the gigabytes (Pillow reads the size before decoding anything)."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # the signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) ^ (0 if good_crc else 1)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", ["bomb", "broken-png"])
def test_a_bomb_or_broken_image_is_one_line_naming_the_file(tmp_path, bench_run, case):
    root = make_synthetic_tree(tmp_path / "t", num_classes=2, per_class=1)
    victim = next((root / "evaluation" / "class_01").iterdir())
    victim.unlink()
    bad = victim.with_suffix(".png")
    if case == "bomb":
        _png_claiming(bad, 30_000, 30_000)
    else:
        _png_claiming(bad, 64, 64, good_crc=False)
    with pytest.raises(InputError, match=re.escape(str(bad))):
        preprocess(bad)
    model = make_onnx(tmp_path / "tiny.onnx", ["N", 3, 224, 224], out_classes=2)
    r = bench_run("--model", model, "--data", root, "--variants", "onnx-cpu",
                  "--profile", "smoke", "--out", tmp_path / "out")
    assert r.code == 2, r.err
    assert r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1
    assert str(bad) in r.err
    wanted = "too large to decode safely" if case == "bomb" else "cannot read image"
    assert wanted in r.err
    assert not (tmp_path / "out").exists()


MOBILEVIT = {"input_size": (3, 256, 256), "interpolation": "bicubic", "mean": (0.0, 0.0, 0.0),
             "std": (1.0, 1.0, 1.0), "crop_pct": 0.9, "crop_mode": "center"}


@pytest.mark.parametrize("cfg", [
    MOBILEVIT,  # timm's mobilevit_xxs: 256x256, bicubic, resized to 284 first
    {**MOBILEVIT, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "crop_pct": 0.875},
    {**MOBILEVIT, "crop_mode": "squash", "interpolation": "bilinear"},
], ids=["mobilevit", "imagenet-stats", "squash"])
@pytest.mark.parametrize("size", [(320, 240), (240, 333), (256, 256)])
def test_a_models_data_config_sets_its_preprocessing_as_timm_does(tmp_path, cfg, size):
    timm_data = pytest.importorskip("timm.data", reason="timm not installed: it is the reference")
    rng = np.random.default_rng(1)
    path = tmp_path / "x.jpg"
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    config = DataConfig.from_mapping(cfg, "timm")
    ours = preprocess(path, config)
    assert ours.shape == (3, 256, 256)
    with Image.open(path) as im:
        want = timm_data.create_transform(**cfg, is_training=False)(im.convert("RGB")).numpy()
    np.testing.assert_allclose(ours, want, atol=2e-5)


def test_a_dataset_is_loaded_at_the_models_input_size(tmp_path):
    root = make_synthetic_tree(tmp_path / "t", num_classes=2, per_class=1)
    config = DataConfig.from_mapping(MOBILEVIT, "timm")
    ds = load_dataset(root, per_class=1, synthetic=True, config=config)
    assert ds.splits["evaluation"].images.shape == (2, 3, 256, 256)
    # bicubic, not bilinear; mean 0 and std 1: pixels in [0, 1]
    first = ds.splits["evaluation"].paths[0]
    assert np.array_equal(ds.splits["evaluation"].images[0], preprocess(first, config))
    images = ds.splits["evaluation"].images
    assert 0.0 <= images.min() and images.max() <= 1.0
