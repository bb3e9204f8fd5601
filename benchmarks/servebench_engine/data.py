"""Food-11 images as the model sees them, or a small synthetic tree in the same layout.

Layout: ``<root>/{training,validation,evaluation}/class_XX/*.jpg``; labels are the index of the
class folder in sorted order (torchvision ImageFolder's order, which the model was trained with).

Preprocessing follows the model's data config (model.DataConfig: input size, mean/std,
interpolation, crop) and reproduces torchvision's Resize -> CenterCrop -> ToTensor -> Normalize
(timm's eval transform) with Pillow and numpy only (nodes have no torchvision). By default, the
study's MobileNetV2: the short side goes to 224 with PIL's bilinear filter (antialiased, as
torchvision does for PIL images), the long side to ``int(224 * long / short)``, then the centre
crop with torchvision's rounding.
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .context import Split
from .errors import InputError
from .model.data_config import DEFAULT, DataConfig

SPLITS = ("training", "validation", "evaluation")
LOADED_SPLITS = ("validation", "evaluation")  # nothing here trains
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SIZE = DEFAULT.size[0]
MEAN = np.array(DEFAULT.mean, dtype=np.float32)
STD = np.array(DEFAULT.std, dtype=np.float32)
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX,
              "hamming": Image.Resampling.HAMMING, "lanczos": Image.Resampling.LANCZOS}
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


def resize_center_crop(im: Image.Image, size: int = SIZE,
                       config: DataConfig | None = None) -> np.ndarray:
    """An RGB image -> [H, W, 3] uint8 pixels as the model's data config says (by default a
    ``size`` square, torchvision's Resize(size) -> CenterCrop(size)).

    The one preprocessing of the project: every variant and tool that looks at a photo goes
    through here, so they all see the same pixels. As timm's eval transform: the image is
    resized to ``floor(size / crop_pct)`` (the short side, for a square input; covering both
    sides, for another; both sides exactly, in ``squash`` mode), then centre-cropped."""
    cfg = config or (DEFAULT if size == SIZE else replace(DEFAULT, input_size=(3, size, size)))
    (out_h, out_w), (scale_h, scale_w) = cfg.size, cfg.scale_size
    w, h = im.size
    if cfg.crop_mode == "squash":
        new_w, new_h = scale_w, scale_h
    elif scale_h == scale_w:  # torchvision's Resize(int): the short side, the long one truncated
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(scale_h * long / short)
        new_w, new_h = (scale_h, new_long) if w <= h else (new_long, scale_h)
    else:  # timm's ResizeKeepRatio: the smallest scale that covers both sides
        ratio = min(h / scale_h, w / scale_w)
        new_w, new_h = round(w / ratio), round(h / ratio)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), RESAMPLING[cfg.interpolation])
    top = int(round((new_h - out_h) / 2.0))
    left = int(round((new_w - out_w) / 2.0))
    return np.asarray(im.crop((left, top, left + out_w, top + out_h)), dtype=np.uint8)


def normalise(pixels: np.ndarray, config: DataConfig = DEFAULT) -> np.ndarray:
    """[H, W, 3] uint8 pixels -> [3, H, W] float32, normalised with the config's mean and std
    (torchvision's ToTensor then Normalize)."""
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    arr = (np.asarray(pixels, dtype=np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def preprocess(path: Path, config: DataConfig = DEFAULT) -> np.ndarray:
    """One image file -> CHW float32, as the model's data config says.

    Pillow checks the pixel count from the header, before decoding: past its MAX_IMAGE_PIXELS
    (~89 MP; a photo of a dish is a few) it only warns up to twice that, which is made an error
    here, since decoding one such image takes gigabytes. Any failure to decode is the file's,
    named in one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                pixels = resize_center_crop(im.convert("RGB"), config=config)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"image {path} is too large to decode safely, a decompression bomb? "
                         f"({_first_line(e)}): shrink it or remove it from the data set") from None
    except Exception as e:  # noqa: BLE001 -- Pillow raises OSError, SyntaxError, ValueError...
        raise InputError(f"cannot read image {path}: {_first_line(e)} (replace or remove "
                         "the file)") from None
    return normalise(pixels, config)


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
               label_ids: list[int] | None = None,
               config: DataConfig = DEFAULT) -> tuple[Split, int]:
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
    images = np.empty((len(order), *config.input_size), dtype=np.float32)
    for i, (_, p) in enumerate(order):
        images[i] = preprocess(p, config)
    ids = label_ids or list(range(len(per_class_paths)))
    labels = np.asarray([ids[label] for label, _ in order], dtype=np.int64)
    return Split(images=images, labels=labels, paths=tuple(p for _, p in order)), available


def load_dataset(root: Path, per_class: int, *, synthetic: bool = False,
                 config: DataConfig = DEFAULT) -> Dataset:
    """The validation and evaluation splits, preprocessed as ``config`` (the model's) says."""
    classes = check_tree(root)
    sample = _class_sample(root) if synthetic else None
    ids = None
    if sample is not None:
        ids = sample["class_ids"]
        width = _name_width(sample["of"])
        classes = [f"class_{c:0{width}d}" for c in range(sample["of"])]
    splits, counts, available = {}, {}, {}
    for name in LOADED_SPLITS:
        splits[name], available[name] = load_split(root / name, per_class, label_ids=ids,
                                                   config=config)
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
