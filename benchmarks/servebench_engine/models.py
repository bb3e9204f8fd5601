"""Several models in one run: their names and their artifact folders (the worker builds each
child's Context from its job).

A model's name is its file's stem (``random-init`` for the default model). It names the model in
every record, its artifacts folder (``artifacts/<name>/``) and, when the run has several models,
the record key ``<name>__<variant>`` (results.record_key). Two models with one name would
overwrite each other's records, so they are refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError
from .model import model_name

if TYPE_CHECKING:  # pragma: no cover
    from .model import PreparedModel


def check_names(paths: Sequence[Path | None]) -> list[str]:
    """The name of each model given (``None``: the default model); an InputError on a clash."""
    names = [model_name(p) for p in paths]
    for path, name in zip(paths, names, strict=True):
        if name in ("", ".", ".."):
            raise InputError(f"--model {path}: its file name gives no usable model name "
                             f"({name!r}); rename the file")
    seen: dict[str, Path | None] = {}
    for path, name in zip(paths, names, strict=True):
        if name in seen:
            first = seen[name] or "the default model"
            raise InputError(f"--model {path} and {first} are both named {name!r} (a model's "
                             "name is its file's stem): rename one so their records stay apart")
        seen[name] = path
    return names


def pair_tflite(names: Sequence[str], tflites: Sequence[Path]) -> dict[str, Path]:
    """Each model's --tflite-model, by name: with one model, the one given (whatever its name);
    with several, the one whose stem is the model's name, since serving one .tflite under every
    model's name would label one model's numbers with the others'."""
    if len(names) == 1:
        if len(tflites) > 1:
            raise InputError("--tflite-model given more than once for one model")
        return {names[0]: tflites[0]} if tflites else {}
    pairs: dict[str, Path] = {}
    for path in tflites:
        if path.stem not in names:
            raise InputError(f"--tflite-model {path} matches no model: with several models, name "
                             f"each .tflite like its model (one of "
                             f"{', '.join(n + '.tflite' for n in names)})")
        if path.stem in pairs:
            raise InputError(f"--tflite-model {path} and {pairs[path.stem]} are both for "
                             f"{path.stem}")
        pairs[path.stem] = path
    return pairs


def artifacts_dir(artifacts_root: Path, model: PreparedModel) -> Path:
    return artifacts_root / model.name
