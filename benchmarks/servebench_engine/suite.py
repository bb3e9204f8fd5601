"""Run the selected variants of every model and write one record each, plus suite.json.

Each repeat of each (model, variant) runs in a fresh process (worker.py, which measures it
with variant_run.py), interleaved: for every repeat, every model, every variant (ABC ABC ABC),
so a slow minute of the machine hits all variants alike instead of one. Accuracy is measured
in the first repeat only; repeats.merge pools the rest.

Slow preparations (quantising, converting: ``Variant.prepare_estimate_s``) run first, before
anything is timed, several at once in processes of their own (prepare_ahead); the measuring
processes then reuse what they made (variants/reuse.py), so no timed loop shares the machine
with a quantiser, and the untimed minutes overlap.

A variant that raises, or whose process dies (a segfault, the OOM killer, a signal), gets an
error record and the next one runs; only KeyboardInterrupt (or SIGTERM) stops the suite (the
running child is stopped too; suite.json then says ``interrupted``; the records written so far,
each with the repeats finished, stay), and an OSError writing a record (``failed``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import environment, errors, repeats, results, worker
from .data import Dataset
from .model import PreparedModel, torch_source
from .model import artifacts_dir
from .profiles import Profile
from .record import base_record, finish_error
from .settings import Settings
from .variant_run import PREPARED, summary_line
from .variant_run import run_variant  # noqa: F401 - tests/engine/test_ort_guard.py imports it here
from .variants import REGISTRY, load_class

SUITE_FILE = "suite.json"
ARTIFACTS = "artifacts"
# Memory one prepare-ahead child may need at its peak, its helper included: with less free,
# fewer run at once. Measured here on MobileNetV2 (quick profile): the child 0.1-0.5 GB, beside
# its helper: the TFLite converter 0.75 GB, Neural Compressor 0.35 (dynamic) to 0.68 GB (static).
PREPARE_PEAK_BYTES = 2 << 30


@dataclass(frozen=True)
class SuiteConfig:
    """The run's settings, and what cli.py made of them: the variant ids and the profile."""

    settings: Settings
    variants: list[str]
    profile: Profile

    @property
    def out(self) -> Path:
        return self.settings.out


def prepare_estimate_s(variant_id: str) -> float:
    try:
        return float(load_class(variant_id).prepare_estimate_s)
    except Exception:  # noqa: BLE001 - a missing runtime, a broken module: the measuring
        return 0.0     # child records the skip or the error, as for any other variant


def prepare_lanes(requested: int | None, jobs: int, root: Path = environment.ROOT) -> int:
    """How many prepare-ahead children run at once: ``requested`` (--prepare-jobs), else as
    many as there are usable CPUs and free memory for (PREPARE_PEAK_BYTES each), at least 1."""
    if requested:
        return max(1, min(requested, jobs))
    available = environment.available_memory_bytes(root)
    by_memory = available // PREPARE_PEAK_BYTES if available else 1
    return max(1, min(jobs, environment.usable_cpus(root), by_memory))


def prepare_ahead(cfg: SuiteConfig, jobs: list[tuple[PreparedModel, str, str]], run: dict,
                  shared: dict, folder: Path, log: Callable[[str], None]) -> dict[str, dict]:
    """Make the artifacts of every slow-preparing variant before anything is timed, up to
    ``prepare_lanes`` at once (they are untimed, so sharing the CPU costs only their own
    seconds). Returns key -> the child's outcome: ``prepared``, or its final record."""
    estimate = {vid: prepare_estimate_s(vid) for _, vid, _ in jobs}
    slow = sorted((j for j in jobs if estimate[j[1]] > 0), key=lambda j: -estimate[j[1]])
    if not slow:
        return {}
    lanes = prepare_lanes(cfg.settings.prepare_jobs, len(slow))
    log(f"preparing {len(slow)} variant(s) before timing anything, {lanes} at a time...")
    tasks = []
    for model, vid, key in slow:
        job = {**_job(cfg, model, vid, run, shared, folder, 1), "mode": worker.PREPARE,
               "result": str(folder / f"{key}.prepared.json")}

        def say(msg: str, prefix: str = f"[prepare] {key}: ") -> None:
            log(prefix + msg)

        tasks.append((job, folder / f"{key}.prepare-job.json", say))
    outcomes = {}
    for (job, _, say), (_, _, key), outcome in zip(tasks, slow, worker.run_children(tasks, lanes),
                                                   strict=True):
        if isinstance(outcome, worker.WorkerDied):
            outcome = _died(job, outcome, say)
        outcomes[key] = {**outcome, "lanes": lanes} if outcome["status"] == PREPARED else outcome
    return outcomes


def _ahead_info(outcome: dict) -> dict:
    return {"lanes": outcome["lanes"], "peak_rss_mb": outcome["peak_rss_mb"]}


def _job(cfg: SuiteConfig, model: PreparedModel, vid: str, run: dict, shared: dict,
         folder: Path, repeat: int) -> dict:
    """What a child needs to rebuild the variant's Context and measure one repeat."""
    workdir = artifacts_dir(cfg.out / ARTIFACTS, model)
    workdir.mkdir(parents=True, exist_ok=True)
    return {
        "variant": vid,
        "target": REGISTRY[vid],
        "accuracy": repeat == 1,
        "parent": os.getpid(),
        "run": {**run, "model": model.describe()},
        "result": str(folder / "result.json"),
        "splits": shared["splits"],
        "context": {
            "workdir": str(workdir.resolve()),
            "profile": worker.profile_job(cfg.profile),
            "model_onnx": str(model.onnx_path.resolve()),
            "model_is_quantized": model.is_quantized,
            "num_classes": model.num_classes,
            "torch": shared["torch"][model.name],
            "tflite_model": str(model.tflite_model.resolve()) if model.tflite_model else None,
            "tflite_int8_model": (str(model.tflite_int8_model.resolve())
                                  if model.tflite_int8_model else None),
        },
        "settings": cfg.settings.job(),
    }


def _died(job: dict, exc: worker.WorkerDied, say: Callable[[str], None]) -> dict:
    record = finish_error(base_record(job["variant"], run=job["run"]), exc)
    record["info"].pop("traceback", None)  # the parent's frames say nothing about it
    say(f"error: {record['error_type']}: {record['reason']}")
    return record


def _measure_in_child(job: dict, folder: Path, say: Callable[[str], None]) -> dict:
    try:
        return worker.run_child(job, folder / "job.json", say)
    except worker.WorkerDied as e:
        return _died(job, e, say)


def _entry(record: dict, key: str) -> dict:
    done = record.get("repeats") or {}
    return {"status": record["status"], "reason": record["reason"],
            "p50_ms": record["latency_ms"]["p50"] if record["latency_ms"] else None,
            "repeats": done.get("count"), "replicable": done.get("replicable"),
            "file": f"{key}.json"}


def run_suite(cfg: SuiteConfig, models: list[PreparedModel] | PreparedModel, dataset: Dataset,
              log: Callable[[str], None] = print) -> dict:
    """Benchmark every selected variant of every model into ``cfg.out``; returns the summary."""
    models = [models] if isinstance(models, PreparedModel) else list(models)
    count = cfg.settings.repeats or cfg.profile.repeats
    (cfg.out / ARTIFACTS).mkdir(parents=True, exist_ok=True)
    log("recording the environment...")
    run = {
        "host": cfg.settings.host_label,
        "host_kind": cfg.settings.host_kind,
        "profile": cfg.profile.name,
        "data": dataset.describe(),
        "environment": environment.collect(cfg.settings.threads),
        "batch_size": cfg.profile.batch_size,
    }
    several = len(models) > 1
    jobs = [(m, vid, results.record_key(m.name, vid, several))
            for m in models for vid in cfg.variants]
    summary = {
        "schema_version": results.SCHEMA_VERSION,
        "status": "running",
        "host": cfg.settings.host_label,
        "host_kind": cfg.settings.host_kind,
        "profile": cfg.profile.name,
        "model": models[0].describe(),
        "models": [m.name for m in models],
        "data": run["data"],
        "variants": list(cfg.variants),
        "repeats": count,
        "results": {key: None for _, _, key in jobs},
        "started_at": results.now_iso(),
        "finished_at": None,
    }
    suite_path = cfg.out / SUITE_FILE
    results.write_record(suite_path, summary)
    parts: dict[str, list[dict]] = {key: [] for _, _, key in jobs}
    try:
        with tempfile.TemporaryDirectory(prefix="servebench-jobs-") as tmp:
            folder = Path(tmp)
            shared = {"splits": worker.share_splits(dataset.splits, folder),
                      "torch": {m.name: torch_source(m, folder,
                                                     allow_pickle=cfg.settings.allow_pickle)
                                for m in models}}
            ahead = prepare_ahead(cfg, jobs, run, shared, folder, log)
            for r in range(1, count + 1):
                for i, (model, vid, key) in enumerate(jobs, 1):
                    errors.raise_if_signalled()
                    done = parts[key]
                    if done and done[-1]["status"] != "ok":
                        continue  # an error or skip is final: no further repeats of it
                    where = f"r{r}/{count} {i}/{len(jobs)}" if count > 1 else f"{i}/{len(jobs)}"

                    def say(msg: str, prefix: str = f"[{where}] {key}: ") -> None:
                        log(prefix + msg)

                    made = ahead.get(key)
                    if made is not None and made["status"] != PREPARED:
                        done.append(made)  # its prepare failed or skipped: nothing to time
                    else:
                        job = _job(cfg, model, vid, run, shared, folder, r)
                        done.append(_measure_in_child(job, folder, say))
                        if made is not None and "info" in done[-1]:
                            # The artifacts were made ahead: their making is that child's.
                            done[-1]["info"].update(prepare_s=made["prepare_s"],
                                                    prepared_ahead=_ahead_info(made))
                    record = repeats.merge(done, count)
                    if r == count > 1 and record["status"] == "ok":
                        rep = record["repeats"]
                        say(f"{count} repeats: pooled {summary_line(record)}; p50 spread "
                            f"{rep['spread']:.3f} ({'' if rep['replicable'] else 'NOT '}"
                            "replicable)")
                    results.write_record(cfg.out / f"{key}.json", record)
                    summary["results"][key] = _entry(record, key)
                    results.write_record(suite_path, summary)
    except KeyboardInterrupt:
        # SIGTERM arrives here too (errors.Terminated): the finished records stay valid.
        summary.update(status="interrupted", finished_at=results.now_iso())
        results.write_record(suite_path, summary)
        raise
    except OSError as exc:
        # A full disk may refuse this write as well; the error line still names the path.
        summary.update(status="failed", finished_at=results.now_iso(),
                       reason=f"{exc.filename}: {exc.strerror or exc}")
        try:
            results.write_record(suite_path, summary)
        except OSError:
            pass
        raise
    summary.update(status="complete", finished_at=results.now_iso())
    results.write_record(suite_path, summary)
    counts = {s: sum(1 for r in summary["results"].values() if r["status"] == s)
              for s in ("ok", "error", "skipped")}
    log(f"done: {counts['ok']} ok, {counts['error']} error, {counts['skipped']} skipped "
        f"-> {cfg.out}")
    return summary
