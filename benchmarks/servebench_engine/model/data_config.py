"""How a model wants its images: input size, mean/std, interpolation and crop.

timm calls this a model's data config (``timm.data.resolve_model_data_config``); each model has
its own. The default is the study's MobileNetV2 recipe, torchvision's Resize(224) ->
CenterCrop(224) with ImageNet's mean and std. The config travels with the model: in
PreparedModel, in its record (``describe``), and in the metadata of the ONNX exported here, so a
node handed only that file preprocesses the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from ..errors import InputError

# ONNX metadata key holding the config of a model exported here.
DATA_CONFIG_KEY = "servebench.data_config"
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
CROP_MODES = ("center", "squash")


@dataclass(frozen=True)
class DataConfig:
    input_size: tuple[int, int, int] = (3, 224, 224)   # C, H, W
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    # The image is resized to floor(size / crop_pct) before the centre crop (timm's rule):
    # 1.0 is torchvision's Resize(224) -> CenterCrop(224), 0.875 its Resize(256) -> CenterCrop(224).
    crop_pct: float = 1.0
    crop_mode: str = "center"
    # Where it came from: "default", "timm", "torchvision", "onnx input shape", "onnx metadata".
    source: str = "default"

    def __post_init__(self) -> None:
        c, h, w = self.input_size
        if c != 3 or not (8 <= h <= 4096 and 8 <= w <= 4096):
            raise InputError(f"input size {self.input_size} is not a 3-channel image of 8 to "
                             "4096 pixels a side")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation {self.interpolation!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
        if self.crop_mode not in CROP_MODES:
            raise InputError(f"crop mode {self.crop_mode!r} is not one of {', '.join(CROP_MODES)}")
        finite = all(math.isfinite(v) for v in (*self.mean, *self.std, self.crop_pct))
        if not finite or not 0.1 <= self.crop_pct <= 1.0 or min(self.std) <= 0 \
                or len(self.mean) != 3 or len(self.std) != 3:
            raise InputError(f"data config mean {self.mean}, std {self.std}, crop_pct "
                             f"{self.crop_pct} is not usable")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        return self.input_size[1], self.input_size[2]

    @property
    def scale_size(self) -> tuple[int, int]:
        """(height, width) the image is resized to before the crop."""
        return (math.floor(self.input_size[1] / self.crop_pct),
                math.floor(self.input_size[2] / self.crop_pct))

    def describe(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if k != "source"})

    @classmethod
    def from_mapping(cls, cfg: dict, source: str) -> "DataConfig":
        """From timm's resolved data config (or our own JSON): the keys it names, the rest
        default. Anything malformed is the model's, an InputError."""
        try:
            return cls(input_size=tuple(int(v) for v in cfg["input_size"]),
                       mean=tuple(float(v) for v in cfg.get("mean", cls.mean)),
                       std=tuple(float(v) for v in cfg.get("std", cls.std)),
                       interpolation=str(cfg.get("interpolation", cls.interpolation)),
                       crop_pct=float(cfg.get("crop_pct", cls.crop_pct)),
                       crop_mode=str(cfg.get("crop_mode", cls.crop_mode)), source=source)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"the model's data config ({source}) is malformed: "
                             f"{type(e).__name__}: {e}") from None


DEFAULT = DataConfig()
