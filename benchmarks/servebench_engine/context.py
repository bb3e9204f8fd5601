"""What every variant gets: the prepared model, the data, the profile, the run's settings and a
place for artifacts."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .profiles import Profile
from .settings import Settings


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
    tflite_model: Path | None = None   # this model's .tflite, when one was given
    tflite_int8_model: Path | None = None  # this model's INT8 .tflite, when one was given
    # bench-run's settings (threads, quantizer_python, ...): each is also ``ctx.<name>``, and
    # Context(threads=2) / dataclasses.replace(ctx, threads=2) set it (see below).
    settings: Settings = field(default_factory=Settings)
    log: Callable[[str], None] = print

    def __getattr__(self, name: str) -> Any:
        # Only for names that are not the Context's own: a new setting reaches every variant.
        settings = self.__dict__.get("settings")
        if settings is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(settings, name)

    def sample(self, batch: int) -> np.ndarray:
        """A batch of real evaluation images (repeated when the split is smaller)."""
        imgs = self.splits["evaluation"].images
        idx = np.arange(batch) % len(imgs)
        return np.ascontiguousarray(imgs[idx])


def _settings_as_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """Let Context's keywords include the settings' fields: ``Context(..., threads=2)`` is
    ``Context(..., settings=Settings(threads=2))``; a Context's own field of the same name
    (``tflite_model``, ``tflite_int8_model``: this model's, not the list given) stays the
    Context's."""
    own = {f.name for f in dataclasses.fields(Context)}
    names = {f.name for f in dataclasses.fields(Settings)} - own

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        if given:
            kwargs["settings"] = dataclasses.replace(kwargs.get("settings") or Settings(), **given)
        init(self, *args, **kwargs)

    return __init__


Context.__init__ = _settings_as_keywords(Context.__init__)  # type: ignore[method-assign]
