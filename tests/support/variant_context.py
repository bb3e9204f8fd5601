"""A small, real Context for variant tests, independent of the engine's model module.

The model is a torchvision MobileNetV2 with an 11-class head and random weights. Straight from
its initialiser, in eval mode, its logits are ~1e-10 and every image gets the same class (the
BatchNorm running statistics are the identity while the random convolutions shrink the signal),
so nothing could tell a faithful quantisation from a broken one. Two forward passes in train
mode give BatchNorm real statistics: still random weights, but logits of order 0.1 that differ
per image.

Images are synthetic: a colour per class plus noise, written as JPEGs (for the variants that read
files) and preprocessed by the engine's one preprocessing function (data.preprocess).
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from servebench_engine.context import Context, Split
from servebench_engine.data import preprocess
from servebench_engine.profiles import PROFILES

NUM_CLASSES = 11


def synthetic_split(root: Path, per_class: int, seed: int) -> Split:
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for label in range(NUM_CLASSES):
        colour = np.array([(label * 23) % 256, (label * 71) % 256, (label * 131) % 256])
        folder = root / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.normal(0, 40, (256, 320, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            path = folder / f"{i}.jpg"
            Image.fromarray(pixels).save(path, quality=90)
            paths.append(path)
            labels.append(label)
    images = np.stack([preprocess(p) for p in paths]).astype(np.float32)
    return Split(images=images, labels=np.array(labels, dtype=np.int64), paths=tuple(paths))


def random_mobilenet():
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=NUM_CLASSES)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the passes below
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, 224, 224))
    return model.eval()


def export_onnx(model, path: Path) -> Path:
    import torch

    torch.onnx.export(
        model, (torch.randn(1, 3, 224, 224),), str(path), input_names=["input"],
        output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    return path


_ASSETS: list[SimpleNamespace] = []


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """The model (.onnx and the module) and the synthetic splits, made once per test session.

    Each test module imports this fixture, which pytest treats as one fixture per module; the
    cache makes them share a single build (an export and ~50 JPEGs, seconds on two cores)."""
    if not _ASSETS:
        _ASSETS.append(_build_assets(tmp_path_factory.mktemp("variant-assets")))
    return _ASSETS[0]


def _build_assets(root: Path) -> SimpleNamespace:
    model = random_mobilenet()
    return SimpleNamespace(
        module=model,
        onnx=export_onnx(model, root / "mobilenet_v2_11.onnx"),
        splits={
            "validation": synthetic_split(root / "validation", per_class=2, seed=1),
            "evaluation": synthetic_split(root / "evaluation", per_class=1, seed=2),
        },
    )


def make_context(assets, workdir: Path, **overrides) -> Context:
    fields = dict(
        workdir=workdir,
        profile=PROFILES["quick"],
        model_onnx=assets.onnx,
        model_is_quantized=False,
        num_classes=NUM_CLASSES,
        splits=assets.splits,
       
        torch_model=lambda: copy.deepcopy(assets.module).eval(),
        threads=2,
        log=lambda message: print(message, flush=True),
    )
    fields.update(overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    return Context(**fields)


@pytest.fixture
def variant_context(tiny_assets, tmp_path):
    """A fresh Context over the shared assets; pass overrides through ``make_context``."""
    return make_context(tiny_assets, tmp_path / "work")
