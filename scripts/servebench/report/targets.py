"""The targets a run is judged against: read and strictly validated from a targets.yml.

The shipped targets.yml (repo root) is the one source of the defaults: with no file given we load
it, so the numbers live in exactly one place, a file the user can read and edit.
"""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import ConfigError

# Host kinds a target can be judged on. `local` is deliberately not one: a local host is judged
# against every target, as an indication only (see verdict.py).
TARGET_HOST_KINDS = ("cpu_server", "gpu_server", "edge")

BYTES_PER_MB = 1_000_000  # decimal megabytes, as targets.yml states


def _stat(name: str, field: str) -> Callable[[dict], float | None]:
    def read(record: dict) -> float | None:
        stats = record.get(name)
        return stats.get(field) if isinstance(stats, dict) else None

    return read


@dataclass(frozen=True)
class Uncertainty:
    """What the record says about how sure a judged figure is (docs/RESULTS.md, stats)."""
    figure: str                         # the percentile it rests on: p50, p99...
    count: int | None                   # samples behind it
    ci: tuple[float, float] | None      # 95 % interval of the judged value (its unit)
    valid: bool | None                  # MLPerf LoadGen's minimum query count met


def _percentile_uncertainty(name: str, field: str, invert: float | None = None
                            ) -> Callable[[dict], Uncertainty | None]:
    """The ``ci95``/``valid`` of ``record[name][field]``; ``invert``: the value judged is
    ``invert / field`` (FPS from the p50 in ms), so is its interval. None for stats without
    them (judged on the value alone)."""
    def read(record: dict) -> Uncertainty | None:
        stats = record.get(name)
        if not isinstance(stats, dict) or not isinstance(stats.get("ci95"), dict):
            return None
        ci = stats["ci95"].get(field)
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            ci = (invert / ci[1], invert / ci[0]) if invert else (ci[0], ci[1])
        else:
            ci = None
        valid = (stats.get("valid") or {}).get(field)
        return Uncertainty(field, stats.get("count"), ci, valid)

    return read


KNEE = "knee_rps_at_least"
_KNEE_KEYS = ("p99_ms", "rps")


def _knee(path: Path, ckey: str, value: Any) -> tuple[Criterion, float]:
    """``{p99_ms: B, rps: R}``: the criterion judged at bound B, and its threshold R."""
    if not isinstance(value, dict) or set(value) != set(_KNEE_KEYS):
        raise _bad(path, ckey, "a mapping {p99_ms: <bound in ms>, rps: <requests/s>}", value)
    for key in _KNEE_KEYS:
        number = value[key]
        if (isinstance(number, bool) or not isinstance(number, (int, float))
                or not math.isfinite(number) or number <= 0):
            raise _bad(path, f"{ckey}.{key}", "a positive number", number)
    bound = float(value["p99_ms"])
    return (replace(CRITERIA[KNEE], metric=f"knee (p99 ≤ {bound:g} ms)", bound_ms=bound),
            float(value["rps"]))


def _size_mb(record: dict) -> float | None:
    size = record.get("model_size_bytes")
    return None if size is None else size / BYTES_PER_MB


@dataclass(frozen=True)
class Criterion:
    key: str                      # as written in targets.yml
    metric: str                   # what the report calls the measured value
    unit: str
    below: bool                   # True: value < threshold (strict); False: value >= threshold
    read: Callable[[dict], float | None]  # the measured value from a variant record, or None
    # Its interval and validity, where the record has them; None: judged on the value alone.
    uncertainty: Callable[[dict], Uncertainty | None] = lambda record: None
    # The load mode's knee: the p99 bound (ms) its rate is judged at (verdict.judge_knee);
    # None for every other criterion. Its targets.yml value is a mapping {p99_ms:, rps:}.
    bound_ms: float | None = None

    @property
    def symbol(self) -> str:
        return "<" if self.below else ">="

    def holds(self, value: float, threshold: float) -> bool:
        return value < threshold if self.below else value >= threshold


CRITERIA: dict[str, Criterion] = {
    c.key: c
    for c in (
        *(Criterion(f"{p}_ms_below", f"{p} latency", "ms", True, _stat("latency_ms", p),
                    _percentile_uncertainty("latency_ms", p)) for p in ("p50", "p95", "p99")),
        # 1000 / p50: the definition with an interval (from the p50's).
        Criterion("single_fps_at_least", "single-sample FPS (1000 / p50)", "FPS", False,
                  lambda r: r.get("single_fps_from_p50"),
                  _percentile_uncertainty("latency_ms", "p50", invert=1000.0)),
        # Seed 002's definition: trials / total timed seconds (a mean rate, no interval).
        Criterion("single_fps_trials_at_least", "single-sample FPS (trials / time)", "FPS",
                  False, lambda r: r.get("single_fps_trials")),
        Criterion("batch_img_per_s_at_least", "batch throughput", "img/s", False,
                  lambda r: r.get("batch_throughput")),
        Criterion("model_size_mb_below", "model size", "MB", True, _size_mb),
        Criterion(KNEE, "knee", "req/s", False,
                  lambda r: (_stat("load", "knee")(r) or {}).get("knee_rps")),
    )
}

_TARGET_KEYS = {"title", "hardware", "judged_on", "criteria"}
_REQUIRED_TARGET_KEYS = ("judged_on", "criteria")


@dataclass(frozen=True)
class Target:
    id: str
    title: str
    hardware: str
    judged_on: tuple[str, ...]
    criteria: tuple[tuple[Criterion, float], ...]  # in the file's order


@dataclass(frozen=True)
class Targets:
    source: Path
    targets: tuple[Target, ...]


# A targets file is a page of text; anything far larger is not one (and is never parsed).
MAX_TARGETS_BYTES = 1_000_000
# A plain 1e3 is a number (YAML 1.2); YAML 1.1, PyYAML's, wants a dot and reads it as a string.
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: a second `p50_ms_below` line would otherwise
    silently win, and the user would be judged against a number they think they replaced.
    It refuses aliases (*name) while composing, before any structure is built: a 482-byte
    "billion laughs" would otherwise expand into gigabytes; and keys that are not plain
    scalars (`? [a, b]`), which cannot name anything here."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            if isinstance(index, yaml.ScalarNode) and index.tag == "tag:yaml.org,2002:merge":
                raise _merge_key(index)
            raise yaml.constructor.ConstructorError(
                None, None, f"YAML alias *{ascii(event.anchor)[1:-1][:40]} is not supported in "
                "a targets file: write the value out in full", event.start_mark)
        return super().compose_node(parent, index)


def _merge_key(node: yaml.Node) -> yaml.constructor.ConstructorError:
    # Merged keys would escape the duplicate and unknown-key checks: spelled out only.
    return yaml.constructor.ConstructorError(
        None, None, "YAML merge key '<<' is not supported in a targets file: write each "
        "target's keys out in full", node.start_mark)


def _as_written(loader: _StrictLoader, node: yaml.Node) -> str:
    """The node's text as the file has it, on one line, at most 60 characters."""
    text = loader.buffer[node.start_mark.index:node.end_mark.index] if node.end_mark else ""
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise _merge_key(key_node)
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"complex key {_as_written(loader, key_node)!r} is not supported: "
                "every key of a targets file is a plain name", key_node.start_mark)
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT,
                                    list("-+0123456789"))


def default_targets_path() -> Path:
    """The shipped targets.yml: the repo root's in a source checkout (the file users edit), else
    the copy packaged inside `servebench` for a non-editable install."""
    checkout = Path(__file__).resolve().parents[3] / "targets.yml"
    if checkout.is_file():
        return checkout
    packaged = resources.files("servebench") / "targets.yml"
    if packaged.is_file():
        return Path(str(packaged))
    raise ConfigError("no shipped targets.yml found",
                      hint="pass --targets FILE, e.g. the targets.yml from the servebench repo")


def load_targets(path: Path | None = None) -> Targets:
    """Read and validate targets.yml; any defect raises ConfigError with one line that names the
    file, the key and what is expected."""
    path = Path(path) if path is not None else default_targets_path()
    try:
        if path.stat().st_size > MAX_TARGETS_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes, larger than a targets "
                              f"file can be ({MAX_TARGETS_BYTES:,})",
                              hint="check the --targets path")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", hint="check the --targets path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        plain = isinstance(exc, yaml.constructor.ConstructorError)  # well-formed, not allowed
        raise ConfigError(f"{path}: {_yaml_problem(exc)}",
                          hint="write plain mappings, lists and numbers" if plain
                          else "fix the YAML syntax") from None
    return Targets(source=path, targets=_parse(path, doc))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
    if isinstance(exc, yaml.constructor.ConstructorError):
        return f"{where}{problem}"  # well-formed YAML that this file must not use
    return f"{where}YAML syntax error: {problem}"


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist, _SHOWN.maxstring = 2, 4, 4, 60


def _bad(path: Path, key: str, expected: str, got: Any = None, *, show_got: bool = True) -> ConfigError:
    # What was found, in a bounded form: never a whole structure in an error line.
    tail = f", got {_SHOWN.repr(got)}" if show_got else ""
    return ConfigError(f"{path}: {key if len(key) <= 80 else key[:77] + '...'}: "
                       f"expected {expected}{tail}")


def _parse(path: Path, doc: Any) -> tuple[Target, ...]:
    if not isinstance(doc, dict):
        raise _bad(path, "(top level)", "a mapping with a 'targets' section", doc)
    unknown = sorted(set(doc) - {"targets"}, key=str)
    if unknown:
        raise _bad(path, str(unknown[0]), "only a 'targets' section at the top level",
                   show_got=False)
    if "targets" not in doc:
        raise _bad(path, "targets", "a 'targets' section (it is missing)", show_got=False)
    section = doc["targets"]
    if not isinstance(section, dict) or not section:
        raise _bad(path, "targets", "a mapping of target ids to targets", section)
    return tuple(_parse_target(path, str(tid), body) for tid, body in section.items())


def _parse_target(path: Path, tid: str, body: Any) -> Target:
    where = f"targets.{tid}"
    if not isinstance(body, dict):
        raise _bad(path, where, "a mapping with judged_on and criteria", body)
    for key in body:
        if key not in _TARGET_KEYS:
            raise _bad(path, f"{where}.{key}",
                       f"one of {', '.join(sorted(_TARGET_KEYS))} (unknown key)", show_got=False)
    for key in _REQUIRED_TARGET_KEYS:
        if key not in body:
            raise _bad(path, f"{where}.{key}", "this key (it is missing)", show_got=False)
    for key in ("title", "hardware"):
        if key in body and not isinstance(body[key], str):
            raise _bad(path, f"{where}.{key}", "a string", body[key])

    judged_on = body["judged_on"]
    if not isinstance(judged_on, list) or not judged_on:
        raise _bad(path, f"{where}.judged_on",
                   f"a non-empty list of host kinds ({', '.join(TARGET_HOST_KINDS)})", judged_on)
    for kind in judged_on:
        if kind not in TARGET_HOST_KINDS:
            raise _bad(path, f"{where}.judged_on",
                       f"host kinds among {', '.join(TARGET_HOST_KINDS)} (local hosts are judged "
                       "against every target anyway)", kind)

    criteria = body["criteria"]
    if not isinstance(criteria, dict) or not criteria:
        raise _bad(path, f"{where}.criteria",
                   f"a mapping of criteria ({', '.join(CRITERIA)}) to thresholds", criteria)
    parsed = []
    for key, threshold in criteria.items():
        ckey = f"{where}.criteria.{key}"
        if key not in CRITERIA:
            raise _bad(path, ckey, f"a known criterion: {', '.join(CRITERIA)}", show_got=False)
        if key == KNEE:
            parsed.append(_knee(path, ckey, threshold))
            continue
        # bool is an int in Python; `true` is not a threshold.
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise _bad(path, ckey, f"a number ({CRITERIA[key].unit})", threshold)
        if not math.isfinite(threshold) or threshold <= 0:
            raise _bad(path, ckey, f"a positive number ({CRITERIA[key].unit})", threshold)
        parsed.append((CRITERIA[key], float(threshold)))

    return Target(id=tid, title=body.get("title", tid), hardware=body.get("hardware", ""),
                  judged_on=tuple(judged_on), criteria=tuple(parsed))


def knee_bounds(targets: Targets) -> dict[str, float]:
    """The p99 bound the load mode searches its knee at, per host kind: the bound of the knee
    criterion judging that kind (the strictest when several do: the engine searches one), and
    for ``local`` (judged against every target) the strictest of all. Kinds no knee criterion
    judges are absent: the engine then uses its load profile's own bound."""
    out: dict[str, float] = {}
    for target in targets.targets:
        for criterion, _rps in target.criteria:
            if criterion.bound_ms is None:
                continue
            for kind in (*target.judged_on, "local"):
                out[kind] = min(out.get(kind, criterion.bound_ms), criterion.bound_ms)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m servebench.report.targets FILE``: the file checked, and its knee bounds per
    host kind as JSON (bench.yml's plan reads it before touching any host). Exit 2 with one
    line on a bad file."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) != 1:
            raise ConfigError("usage: python -m servebench.report.targets TARGETS_FILE")
        bounds = knee_bounds(load_targets(Path(args[0])))
    except ConfigError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        return 2
    print(json.dumps({"knee_bounds": bounds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
