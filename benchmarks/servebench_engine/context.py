"""What every variant gets: the prepared model, the data, the profile and a place for artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .profiles import Profile


@dataclass(frozen=True)
class Split:
    """Preprocessed images of one split: NCHW float32, ImageNet-normalised, and integer labels."""

    images: np.ndarray
    labels: np.ndarray
    # Source paths, for the few variants (TFLite) that need their own preprocessing.
    paths: tuple[Path, ...] = ()


@dataclass
class Context:
    workdir: Path                      # artifacts of this run (optimised / quantised models)
    profile: Profile
    model_onnx: Path                   # the model as given, or exported from PyTorch (dynamic batch)
    model_is_quantized: bool           # a given INT8 model: quantising it again makes no sense
    num_classes: int
    splits: dict[str, Split]           # "validation" (calibration, tuning) and "evaluation" (accuracy)
    # Builds a fresh torch.nn.Module in eval mode; None when only an .onnx was given.
    torch_model: Callable[[], Any] | None = None
    # Python of the Neural Compressor environment (docs/DESIGN.md: it needs numpy<2, onnx 1.16).
    quantizer_python: str | None = None
    tflite_model: Path | None = None
    # Python of the TFLite converter's environment (onnx2torch + litert-torch), used when no
    # .tflite model is given.
    tflite_converter_python: str | None = None
    threads: int | None = None         # intra-op threads; None: the runtime's default
    log: Callable[[str], None] = print

    def sample(self, batch: int) -> np.ndarray:
        """A batch of real evaluation images (repeated when the split is smaller)."""
        imgs = self.splits["evaluation"].images
        idx = np.arange(batch) % len(imgs)
        return np.ascontiguousarray(imgs[idx])
