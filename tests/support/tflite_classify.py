"""Top-1 of a .tflite image classifier on one photo, through the engine's own preprocessing and
the variant's own input path: what a user would see, used to prove a model reads pixels right."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from servebench_engine.data import normalise, resize_center_crop
from servebench_engine.variants.tflite_variant import TfliteModel


def classify(image_path: Path | str, model_path: Path | str, labels_path: Path | str) -> tuple[int, str, float]:
    """(index, label, score); the labels file has one label per line, optionally led by its
    index ("89 macaw")."""
    model = TfliteModel(Path(model_path))
    with Image.open(image_path) as im:
        pixels = resize_center_crop(im.convert("RGB"), model.image_size[0])
    scores = model.run_engine_batch(normalise(pixels)[None])[0]
    index = int(scores.argmax())
    lines = Path(labels_path).read_text(encoding="utf-8").splitlines()
    if index >= len(lines):
        raise ValueError(f"{labels_path} has {len(lines)} labels, the model predicted index {index}")
    head, _, rest = lines[index].strip().partition(" ")
    label = rest.strip() if head.isdigit() and rest.strip() else lines[index].strip()
    return index, label, float(scores[index])
