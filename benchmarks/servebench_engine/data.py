"""Food-11 images as the model sees them, or a small synthetic tree in the same layout.

Layout: ``<root>/{training,validation,evaluation}/class_XX/*.jpg``; labels are the index of the
class folder in sorted order (torchvision ImageFolder's order, which the model was trained with).

Preprocessing reproduces torchvision's Resize(224) -> CenterCrop(224) -> ToTensor -> Normalize
with Pillow and numpy only (nodes have no torchvision): the short side goes to 224 with PIL's
bilinear filter (antialiased, as torchvision does for PIL images), the long side to
``int(224 * long / short)``, then the centre crop with torchvision's rounding.
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .context import Split
from .errors import InputError

SPLITS = ("training", "validation", "evaluation")
LOADED_SPLITS = ("validation", "evaluation")  # nothing here trains
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SYNTHETIC_SEED = 11
# The model's class count sizes the synthetic tree: 1000 classes made 6,000 JPEGs and 2.4 GB of
# preprocessed images in smoke (9.6 GB in quick). Above this many, an evenly spaced sample of the
# classes is made, and the data description says so.
SYNTHETIC_MAX_CLASSES = 32
# Beside a synthetic tree: how many classes the model has and which of them have folders.
CLASS_SAMPLE_FILE = "classes.json"


@dataclass
class Dataset:
    splits: dict[str, Split]
    classes: list[str]
    synthetic: bool
    root: Path
    counts: dict[str, int]          # images loaded per split
    available: dict[str, int]       # images present per split (before the per-profile cap)
    # A synthetic tree made for a sample of the model's classes: what and why (None: all).
    class_sample: dict | None = None

    def describe(self) -> dict:
        return {
            "source": "synthetic" if self.synthetic else "food11",
            "synthetic": self.synthetic,
            # The synthetic tree lives in a temporary folder that is gone after the run.
            "root": None if self.synthetic else str(self.root),
            "counts": dict(self.counts),
            "available": dict(self.available),
            "classes": len(self.classes),
            "class_sample": self.class_sample,
        }


def resize_center_crop(im: Image.Image, size: int = SIZE) -> np.ndarray:
    """An RGB image -> [size, size, 3] uint8 pixels: the short side to ``size``, centre crop.

    The one preprocessing of the project: every variant and tool that looks at a photo goes
    through here, so they all see the same pixels."""
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 pixels -> [3, H, W] float32, ImageNet-normalised (torchvision's ToTensor
    then Normalize)."""
    arr = (np.asarray(pixels, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def preprocess(path: Path) -> np.ndarray:
    """One image file -> CHW float32, ImageNet-normalised.

    Pillow checks the pixel count from the header, before decoding: past its MAX_IMAGE_PIXELS
    (~89 MP; a photo of a dish is a few) it only warns up to twice that, which is made an error
    here, since decoding one such image takes gigabytes. Any failure to decode is the file's,
    named in one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                pixels = resize_center_crop(im.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"image {path} is too large to decode safely, a decompression bomb? "
                         f"({_first_line(e)}): shrink it or remove it from the data set") from None
    except Exception as e:  # noqa: BLE001 -- Pillow raises OSError, SyntaxError, ValueError...
        raise InputError(f"cannot read image {path}: {_first_line(e)} (replace or remove "
                         "the file)") from None
    return normalise(pixels)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _class_dirs(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_tree(root: Path) -> list[str]:
    """Validate the layout before anything is written; returns the class names."""
    if not root.is_dir():
        raise InputError(f"data directory {root} does not exist or is not a directory (pass "
                         "--data DIR with the Food-11 tree, or leave it out for synthetic data)")
    classes: list[str] | None = None
    for split in LOADED_SPLITS:
        split_dir = root / split
        try:
            dirs = _class_dirs(split_dir)
        except OSError as e:
            raise InputError(f"cannot read {split_dir}: {e.strerror or e} "
                             f"(expected {root}/{{{','.join(SPLITS)}}}/class_XX/*.jpg)") from None
        names = [d.name for d in dirs]
        if not names:
            raise InputError(f"{split_dir} has no class folders (expected class_XX/*.jpg)")
        if classes is not None and names != classes:
            raise InputError(f"{split_dir} has classes {names}, unlike the other splits {classes}")
        classes = names
        for d in dirs:
            try:
                if not _images(d):
                    raise InputError(f"{d} holds no .jpg images")
            except OSError as e:
                raise InputError(f"cannot read {d}: {e.strerror or e}") from None
    assert classes is not None
    return classes


def load_split(split_dir: Path, per_class: int, seed: int = 0,
               label_ids: list[int] | None = None) -> tuple[Split, int]:
    """Up to ``per_class`` images of each class (a fixed pseudo-random pick, same every run),
    interleaved class by class so that any prefix of the split is balanced: a variant that
    calibrates on the first N validation images sees every class, not only class_00.

    A class's label is its folder's index, or ``label_ids[index]`` (a sampled synthetic tree)."""
    per_class_paths: list[list[Path]] = []
    available = 0
    for d in _class_dirs(split_dir):
        files = _images(d)
        available += len(files)
        if len(files) > per_class:
            files = sorted(random.Random(f"{seed}:{d.name}").sample(files, per_class))
        per_class_paths.append(files)
    order = [(label, files[i]) for i in range(max(map(len, per_class_paths), default=0))
             for label, files in enumerate(per_class_paths) if i < len(files)]
    images = np.empty((len(order), 3, SIZE, SIZE), dtype=np.float32)
    for i, (_, p) in enumerate(order):
        images[i] = preprocess(p)
    ids = label_ids or list(range(len(per_class_paths)))
    labels = np.asarray([ids[label] for label, _ in order], dtype=np.int64)
    return Split(images=images, labels=labels, paths=tuple(p for _, p in order)), available


def load_dataset(root: Path, per_class: int, *, synthetic: bool = False) -> Dataset:
    classes = check_tree(root)
    sample = _class_sample(root) if synthetic else None
    ids = None
    if sample is not None:
        ids = sample["class_ids"]
        width = _name_width(sample["of"])
        classes = [f"class_{c:0{width}d}" for c in range(sample["of"])]
    splits, counts, available = {}, {}, {}
    for name in LOADED_SPLITS:
        splits[name], available[name] = load_split(root / name, per_class, label_ids=ids)
        counts[name] = len(splits[name].labels)
    return Dataset(splits, classes, synthetic, root, counts, available, sample)


def synthetic_class_ids(num_classes: int) -> list[int]:
    """The classes a synthetic tree has folders for: all, or an evenly spaced sample."""
    if num_classes <= SYNTHETIC_MAX_CLASSES:
        return list(range(num_classes))
    return [c * num_classes // SYNTHETIC_MAX_CLASSES for c in range(SYNTHETIC_MAX_CLASSES)]


def _name_width(num_classes: int) -> int:
    # Zero-padded to the largest id, so sorted folder order is numeric order (class_100 after
    # class_99), as the labels assume.
    return max(2, len(str(num_classes - 1)))


def _class_sample(root: Path) -> dict | None:
    try:
        sample = json.loads((root / CLASS_SAMPLE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return sample if len(sample["class_ids"]) < sample["of"] else None


def make_synthetic_tree(root: Path, num_classes: int, per_class: int,
                        seed: int = SYNTHETIC_SEED) -> Path:
    """Write real JPEGs in the Food-11 layout: per class a colour and a texture of its own,
    odd sizes so Resize and CenterCrop do work. Same bytes for the same arguments."""
    rng = np.random.default_rng(seed)
    sizes = [(320, 240), (240, 320), (256, 256), (300, 225)]
    ids, width = synthetic_class_ids(num_classes), _name_width(num_classes)
    root.mkdir(parents=True, exist_ok=True)
    reason = None if len(ids) == num_classes else (
        f"the model has {num_classes} classes; a synthetic tree is capped at "
        f"{SYNTHETIC_MAX_CLASSES} (an evenly spaced sample) to bound its files and memory")
    (root / CLASS_SAMPLE_FILE).write_text(json.dumps(
        {"of": num_classes, "class_ids": ids, "reason": reason}), encoding="utf-8")
    for split in SPLITS:
        for c in ids:
            d = root / split / f"class_{c:0{width}d}"
            d.mkdir(parents=True, exist_ok=True)
            base = rng.integers(30, 226, size=3)
            for i in range(per_class):
                w, h = sizes[(c + i) % len(sizes)]
                yy, xx = np.mgrid[0:h, 0:w]
                stripes = 40 * np.sin((xx * (c + 1) + yy * (i + 2)) / 17.0)
                noise = rng.normal(0, 12, size=(h, w, 3))
                img = np.clip(base + stripes[..., None] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(img, "RGB").save(d / f"{split}_{c:0{width}d}_{i:03d}.jpg",
                                                 quality=90)
    return root
