"""The variant record as a type: one definition of every field of ``<variant>.json``.

Each field of :class:`Record` says, in its metadata, what its value is (the JSON Schema the
collect step and the report enforce, and the type and meaning docs/RESULTS.md's table shows)
and its rule across repeats (:data:`RULES`: how repeats.merge makes the variant's record from
its repeats' records). Every record starts as :func:`base_record`; ok, skipped and error records
are that one filled in (variant_run.measure_variant, :func:`finish_skipped`,
:func:`finish_error`).

A new metric is one field here (with a rule); ``scripts/servebench/results.schema.json``'s
``record`` and the field table of docs/RESULTS.md are checked against :func:`json_schema` and
:func:`markdown_table` by tests/engine/test_record.py (``python -m servebench_engine.record
schema|table`` prints them). Records stay plain dicts: variants and the suite fill them in.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from .results import SCHEMA_VERSION, now_iso

# How a field of the variant's record is made from its repeats' records (all ok; a failed repeat
# makes the record that repeat's, repeats.merge).
RULES = {
    "first": "the first repeat's",
    "last": "the last repeat's",
    "pooled": "statistics of all repeats' samples pooled",
    "fps": "from the pooled `latency_ms`",
    "throughput": "from the pooled `batch_latency_ms`",
    "concatenated": "every repeat's, in repeat order",
    "per repeat": "made of every repeat's (repeats.summary)",
    "by key": "the first repeat's, some keys merged (below)",
    "median figure": "the valid repeat whose `joules_per_inference` is the (lower) median of the "
                     "valid repeats' (the first repeat's when none is valid), with `repeat` (its "
                     "number) and `repeats_joules_per_inference` (each repeat's) added",
}


def record_field(schema: dict, kind: str, meaning: str, *, rule: str = "first",
                 required: bool = False, default: Any = None, from_run: bool = False,
                 samples: str | None = None) -> Any:
    """One field: its JSON Schema, its type and meaning for the docs, its rule across repeats.
    ``from_run``: the value is the suite's, the same in all its records (base_record's ``run``);
    ``samples``: the key of ``samples`` a ``pooled`` field summarises."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}")
    meta = {"schema": schema, "kind": kind, "meaning": " ".join(meaning.split()), "rule": rule,
            "required": required, "from_run": from_run, "samples": samples}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=meta)
    return field(default=default, metadata=meta)


TEXT_OR_NULL = {"$ref": "#/$defs/text_or_null"}
NUMBER_OR_NULL = {"type": ["number", "null"]}
COUNTS = {"type": "array", "items": {"type": "integer", "minimum": 0}}
SAMPLES = {"type": "array", "items": {"type": "integer"}}
# A meter's figure (energy.Window.figure) always says whether it is valid and, if not, why.
ENERGY = {"type": ["object", "null"],
          "required": ["source", "valid", "reason", "joules_per_inference"]}


@dataclass
class Record:
    schema_version: int = record_field(
        {"$ref": "#/$defs/schema_version"}, "int", required=True, default=SCHEMA_VERSION,
        meaning="2 (1: before repeats, several models and percentile validity; refused)")
    variant: str = record_field({"type": "string", "minLength": 1}, "str", required=True,
                                meaning="variant id, e.g. `onnx-cpu`")
    status: str | None = record_field({"enum": ["ok", "error", "skipped"]}, "str", required=True,
                                      meaning="`ok`, `error` or `skipped`")
    reason: str | None = record_field(
        TEXT_OR_NULL, "str or null", required=True,
        meaning="why skipped or the error's one-line message (`error_type` too)")
    error_type: str | None = record_field(TEXT_OR_NULL, "str or null",
                                          meaning="the error's exception class")
    host: str = record_field({"type": "string"}, "str", required=True, from_run=True,
                             meaning="inventory name (or hostname)")
    host_kind: str = record_field({"$ref": "#/$defs/host_kind"}, "str", required=True,
                                  from_run=True, meaning="the host's kind")
    profile: str = record_field({"type": "string"}, "str", required=True, from_run=True,
                                meaning="`quick`, `full` or `smoke` (tests only)")
    model: dict = record_field(
        {"type": "object"}, "obj", required=True, from_run=True,
        meaning="`name` (the file's stem, NAME for `timm:NAME` / `torchvision:NAME`, "
                "`random-init` by default), `source` (path, the name given, or `random-init`), "
                "`random_weights` (bool), `format` (`onnx`, `pth`, `timm`, `torchvision`, "
                "`random-init`), `sha256`, `num_classes`, `quantized`, `onnx`, `torch_program` "
                "(file name of the `.pt2` beside the ONNX the torch variants served, or null), "
                "`architecture` (what rebuilds the network from saved weights, e.g. "
                "`timm:tinynet_e`, or null), `data_config` {`input_size` [C, H, W], `mean`, "
                "`std`, `interpolation`, `crop_pct`, `crop_mode`, `source`: `default`, `timm`, "
                "`torchvision`, `onnx input shape` or `onnx metadata`}")
    served_model: str | None = record_field(TEXT_OR_NULL, "str or null",
                                            meaning="file name of the model this variant served")
    model_size_bytes: int | None = record_field({"type": ["integer", "null"]}, "int or null",
                                                meaning="size on disk of the served model")
    data: dict = record_field(
        {"type": "object"}, "obj", required=True, from_run=True,
        meaning="`source` (`food11` or `synthetic`), `synthetic` (bool), `root`, `counts` and "
                "`available` per split, `classes`, `class_sample` (null, or for a synthetic tree "
                "of a model with more than 32 classes {`of`, `class_ids`, `reason`})")
    accuracy: dict | None = record_field(
        {"type": ["object", "null"]}, "obj or null", required=True,
        meaning="`correct`, `total`, `value` (correct/total), `split`; `value` null with a "
                "`reason` when the model's classes cannot be scored against these labels")
    latency_ms: dict | None = record_field(
        {"$ref": "#/$defs/stats"}, "obj or null", required=True, rule="pooled",
        samples="latency_ns", meaning="single-sample (batch 1) stats, see below")
    single_fps_from_p50: float | None = record_field(
        {"description": "1000 / latency_ms.p50.", **NUMBER_OR_NULL}, "float or null", rule="fps",
        meaning="single-sample FPS = 1000 / latency p50 (ms)")
    single_fps_trials: float | None = record_field(
        {"description": "Timed single-sample calls / their total seconds (seed 002).",
         **NUMBER_OR_NULL}, "float or null", rule="fps",
        meaning="single-sample FPS as seed 002 defines it: timed calls / their total seconds")
    batch_size: int = record_field({"type": "integer"}, "int", required=True, from_run=True,
                                   meaning="the profile's batch size (32 in every profile)")
    batch_latency_ms: dict | None = record_field(
        {"$ref": "#/$defs/stats"}, "obj or null", rule="pooled", samples="batch_ns",
        meaning="stats of one batch-32 call")
    batch_throughput: float | None = record_field(
        NUMBER_OR_NULL, "float or null", rule="throughput",
        meaning="images/s = batch_size / mean batch latency")
    cold_start_ms: float | None = record_field(
        NUMBER_OR_NULL, "float or null",
        meaning="load (session creation) + first inference; every repeat's in `repeats`")
    energy: dict | None = record_field(
        ENERGY, "obj or null", rule="median figure",
        meaning="energy over the single-sample timed loop (the very iterations of `latency_ms`, "
                "lengthened to the meter's `min_window_s` where the profile's time cap allows): "
                "the meter's figure (servebench_engine.energy): `source` (`rapl`, `nvml`, "
                "`pi5-pmic`, `ipmi-dcmi`, joined by `+`; null: none), `valid`, `reason` (why "
                "not valid or null: every source's), `joules_per_inference`, `mean_watts`, "
                "`idle_watts`, `joules_per_inference_above_idle`, `window_s`, `min_window_s`, "
                "`update_period_s`, `sources`, `unavailable`; and `idle`: the idle node read "
                "before the variant was loaded (`watts`, `seconds`, `valid`, `reason`, "
                "`domains`; the profile's `energy_idle_s`)")
    batch_energy: dict | None = record_field(
        ENERGY, "obj or null", rule="median figure",
        meaning="the same over the batch loop (`batch_latency_ms`'s iterations), per image: "
                "`inferences` counts images (batch calls x `batch_size`)")
    load: dict | None = record_field(
        {"type": ["object", "null"]}, "obj or null",
        meaning="the load mode (servebench_engine.load.run_load's dict: `closed_loop`, "
                "`layout`, `open_loop`, `knee`, `best_closed_loop_rps`, "
                "`knee_share_of_ceiling`, `generator`, `settings`, `duration_s`), measured in "
                "the first repeat of the variants --load-variants names; plus `load_profile` "
                "and `bound_ms`; only `knee` (null) and `reason` when the variant could not be "
                "served under load (loaded again, at batch 1); null: not asked")
    providers: dict = record_field(
        {"type": "object", "required": ["requested", "active"]}, "obj", required=True,
        default={"requested": [], "active": []},
        meaning="`requested` and `active` execution providers (ORT variants)")
    route: str | None = record_field(
        TEXT_OR_NULL, "str or null",
        meaning="how the model was made (e.g. `neural-compressor 3.7.1 static QOperator`)")
    info: dict = record_field(
        {"type": "object"}, "obj", rule="by key", default={},
        meaning="variant specifics: EP options, optimisation level, tuning trials; for "
                "`torch-*`, `served_as` (`torch.export program`: the prepared `.pt2`, or "
                "`state_dict`: the weights saved as a `.pth` and read back as data); for "
                "`tflite`, `tflite_source` (`converted` / `given`) and, when converted here, "
                "`conversion` (route, seconds, size, max difference from the ONNX model); the "
                "engine's own keys below")
    environment: dict = record_field(
        {"type": "object"}, "obj", required=True, from_run=True,
        meaning="cpu model/flags, cores, threads, memory, gpu/driver, library versions, git "
                "revision, hostname, time; `kernel`; `cpu_governor` (cpufreq governor(s), "
                "comma-joined when CPUs differ; null without cpufreq, as in most VMs); "
                "`cpu_freq_mhz` {`current` (mean over CPUs), `max` (hardware), `policy_max` "
                "(the cap now), `source`: `cpufreq` or `cpuinfo` (a VM's \"cpu MHz\", often "
                "nominal)} or null; `cgroup_cpu` {`version` 1/2, `quota_us`, `period_us`, "
                "`cpus` (= quota / period, the tightest on the way up the cgroup tree; null: "
                "unlimited), `cpuset`} or null; `temperature_c` (hottest readable thermal zone / "
                "hwmon sensor, or null); `runtime_image` {`name`: the image tag, `id`: its "
                "sha256 ID (a local build has no registry digest)} when the engine ran in a "
                "runtime image, else null")
    samples: dict = record_field(
        {"type": "object", "required": ["latency_ns", "batch_ns"],
         "properties": {"latency_ns": SAMPLES, "batch_ns": SAMPLES,
                        "repeat_counts": {
                            "description": "Samples per repeat, in repeat order: splits the "
                                           "pooled samples.",
                            "type": "object", "required": ["latency", "batch"],
                            "properties": {"latency": COUNTS, "batch": COUNTS}}}},
        "obj", required=True, rule="concatenated",
        default={"latency_ns": [], "batch_ns": [], "repeat_counts": {"latency": [], "batch": []}},
        meaning="raw samples of all repeats pooled in repeat order: `latency_ns` (list of int), "
                "`batch_ns` (list of int); `repeat_counts` {`latency`: [n1, n2, ...], `batch`: "
                "[...]} splits them per repeat")
    repeats: dict | None = record_field(
        {"$ref": "#/$defs/repeats"}, "obj or null", rule="per repeat",
        meaning="the fresh engine processes: `count` (ok), `planned`, `p50_ms` (each repeat's "
                "median), `batch_throughput`, `cold_start_ms` (each repeat's), `spread` "
                "(largest / smallest repeat median; null with one), `replicable` (`spread` <= "
                "1.05; null with one), `rule`; see [Repeats](#repeats-one-fresh-process-each)")
    started_at: str = record_field({"$ref": "#/$defs/time"}, "str", required=True,
                                   meaning="ISO 8601 UTC, when the first repeat started")
    finished_at: str | None = record_field({"$ref": "#/$defs/time_or_null"}, "str", rule="last",
                                           required=True,
                                           meaning="ISO 8601 UTC, when the last repeat finished")


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(Record)
DESCRIPTION = "<host>/<variant>.json, one per variant (docs/RESULTS.md, 'A variant record')."


def base_record(variant: str, *, run: dict) -> dict:
    """Every key of the schema, empty; ``run`` holds what all records of a suite share
    (host, host_kind, profile, model, data, environment, batch_size)."""
    given = {f.name: run[f.name] for f in FIELDS if f.metadata["from_run"]}
    return dataclasses.asdict(Record(variant=variant, started_at=now_iso(), **given))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] if text else type(exc).__name__


def finish_error(record: dict, exc: BaseException) -> dict:
    record.update(status="error", reason=one_line(exc), error_type=type(exc).__name__,
                  finished_at=now_iso())
    # The last frames, for whoever debugs the variant; the reason stays one line.
    record["info"]["traceback"] = traceback.format_exception(exc)[-6:]
    return record


def finish_skipped(record: dict, reason: str) -> dict:
    record.update(status="skipped", reason=reason, finished_at=now_iso())
    return record


def json_schema() -> dict:
    """The ``record`` definition of scripts/servebench/results.schema.json."""
    return {"description": DESCRIPTION, "type": "object",
            "required": [f.name for f in FIELDS if f.metadata["required"]],
            "properties": {f.name: f.metadata["schema"] for f in FIELDS}}


def markdown_table() -> str:
    """The field table of docs/RESULTS.md ("A variant record")."""
    rows = ["| key | type | across repeats | meaning |", "|---|---|---|---|"]
    for f in FIELDS:
        rule = f.metadata["rule"]
        if f.metadata["from_run"]:
            rule = "the suite's (every repeat's)"
        elif f.metadata["samples"]:
            rule = f"{RULES[rule]} (`samples.{f.metadata['samples']}`)"
        else:
            rule = RULES[rule]
        rows.append(f"| `{f.name}` | {f.metadata['kind']} | {rule} | {f.metadata['meaning']} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["schema"]:
        print(json.dumps(json_schema(), indent=1))
    elif argv == ["table"]:
        print(markdown_table(), end="")
    else:
        print("usage: python -m servebench_engine.record schema|table", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
