"""Models by name: ``timm:NAME`` and ``torchvision:NAME``, each with ``:random`` for random weights.

Pretrained weights come from the model's hub (Hugging Face for timm, download.pytorch.org for
torchvision). A node that cannot reach it gets one line naming the model, after one short
connection attempt rather than the hubs' minute of retries. Random weights are used only when
asked for, and the record says so. Each model brings its own data config (timm's
``resolve_model_data_config``; torchvision's weights' transforms) instead of the 224 default.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from ..errors import InputError
from .data_config import DataConfig

HUBS = ("timm", "torchvision")
_SPEC = re.compile(r"^(timm|torchvision):([A-Za-z0-9_.\-]+)(:random)?$")
RANDOM_SUFFIX = ":random"
TORCHVISION_WEIGHTS_URL = "https://download.pytorch.org"
HUB_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ModelName:
    hub: str
    name: str
    random: bool

    @property
    def architecture(self) -> str:
        return f"{self.hub}:{self.name}"

    def __str__(self) -> str:
        return self.architecture + (RANDOM_SUFFIX if self.random else "")


def parse(arg: str) -> ModelName | None:
    """``timm:NAME[:random]`` or ``torchvision:NAME[:random]``; None for anything else (a path)."""
    if not arg.startswith(tuple(f"{hub}:" for hub in HUBS)):
        return None
    match = _SPEC.match(arg)
    if not match:
        raise InputError(f"--model {arg}: expected timm:NAME, timm:NAME:random, "
                         "torchvision:NAME or torchvision:NAME:random")
    return ModelName(match[1], match[2], bool(match[3]))


def _import(hub: str, spec: str):
    try:
        if hub == "timm":
            import timm
            return timm
        import torchvision.models
        return torchvision.models
    except ImportError:
        raise InputError(f"--model {spec} needs the {hub} package, which is not installed here; "
                         f"install it (pip install {hub}) or pass an exported .onnx") from None


def _known(spec: ModelName, names: list[str]) -> None:
    base = spec.name.split(".")[0]  # timm's NAME.PRETRAINED_TAG
    if base not in names:
        close = difflib.get_close_matches(base, names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"see {spec.hub}'s model list"
        raise InputError(f"--model {spec}: {spec.hub} has no model {base!r} ({hint})")


def build(spec: ModelName, num_classes: int | None = None):
    """The network, pretrained unless ``spec.random`` (then freshly initialised: seed first)."""
    lib = _import(spec.hub, str(spec))
    _known(spec, lib.list_models())
    if not spec.random:
        _reachable(_hf_endpoint() if spec.hub == "timm" else TORCHVISION_WEIGHTS_URL, spec)
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if spec.hub == "timm":
        return _guarded(spec, lambda: lib.create_model(spec.name, pretrained=not spec.random,
                                                        **extra))
    return _guarded(spec, lambda: lib.get_model(spec.name, weights=None if spec.random
                                                else "DEFAULT", **extra))


def _guarded(spec: ModelName, make):
    try:
        return make()
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 -- a hub's download or a model's builder: the model's
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"--model {spec}: cannot build it ({type(e).__name__}: {first})"
                         + ("" if spec.random else f"; {spec.architecture}{RANDOM_SUFFIX} "
                            "gives random weights")) from None


# timm's own reparameterisation hooks (timm.models._manipulate.reparameterize_model).
REPARAMETERIZE_HOOKS = ("fuse", "reparameterize", "switch_to_deploy")


def reparameterize(spec: ModelName, net) -> tuple[Any, int]:
    """The network as it is served: a timm model's training-time branches fused for inference
    (MobileOne, RepVGG, FastViT...: several convolutions and norms become one), as the guide this
    study follows does before export; how many modules had a hook (0: nothing to fuse, the net
    unchanged). Every variant, the ONNX and the .tflite then serve the same fused network."""
    if spec.hub != "timm":
        return net, 0
    hooked = sum(1 for m in net.modules() if any(hasattr(m, h) for h in REPARAMETERIZE_HOOKS))
    if not hooked:
        return net, 0
    import timm.utils

    return timm.utils.reparameterize_model(net).eval(), hooked


def data_config(spec: ModelName, net) -> DataConfig:
    """The model's own preprocessing."""
    if spec.hub == "timm":
        import timm.data

        return DataConfig.from_mapping(timm.data.resolve_model_data_config(net), "timm")
    import torchvision.models

    try:
        weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    except (ValueError, KeyError, AttributeError):  # no published weights: the default recipe
        return DataConfig(source="torchvision (no weights recipe: the default)")
    t = weights.transforms()
    crop, resize = t.crop_size[0], t.resize_size[0]
    return DataConfig(input_size=(3, crop, crop), mean=tuple(t.mean), std=tuple(t.std),
                      interpolation=t.interpolation.value, crop_pct=crop / resize,
                      source="torchvision")


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def _reachable(url: str, spec: ModelName) -> None:
    """One connection attempt to the hub, so an offline node fails at once with the reason."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port),
                                      timeout=HUB_CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise InputError(f"--model {spec}: its pretrained weights come from {parsed.hostname}, "
                         f"which cannot be reached from here ({e.strerror or e}); use "
                         f"{spec.architecture}{RANDOM_SUFFIX} for random weights, or export "
                         "it to .onnx (bench-run --export-only) where the hub is reachable") \
            from None
