"""Run the selected variants of every model and write one record each, plus suite.json.

Per variant: prepare (make artifacts, untimed) -> load + first inference (cold start) ->
accuracy on the evaluation split -> single-sample latency -> batch throughput. Each repeat of
each (model, variant) runs in a fresh process (worker.py), interleaved: for every repeat, every
model, every variant (ABC ABC ABC), so a slow minute of the machine hits all variants alike
instead of one. Accuracy is measured in the first repeat only; repeats.merge pools the rest.

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

import gc
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import environment, errors, measure, repeats, results, worker
from .context import Context
from .data import Dataset
from .model import PreparedModel, torch_source
from .model import artifacts_dir
from .profiles import Profile
from .record import base_record, finish_error, finish_skipped, one_line
from .settings import Settings
from .stats import summarize_ns
from .variants import REGISTRY, load_class
from .variants.base import VariantSkipped

SUITE_FILE = "suite.json"
ARTIFACTS = "artifacts"
# The status of a prepare-ahead child that made the variant's artifacts.
PREPARED = "prepared"
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


def model_size(path: Path | None) -> int | None:
    """Bytes on disk of what serves: a file, a folder (saved model), or OpenVINO's .xml + .bin."""
    if path is None or not path.exists():
        return None
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    weights = path.with_suffix(".bin")
    if path.suffix == ".xml" and weights.is_file():
        size += weights.stat().st_size
    return size


def _fmt(record: dict) -> str:
    lat, acc = record["latency_ms"], record["accuracy"]
    parts = [f"p50={lat['p50']:.3f} ms", f"p99={lat['p99']:.3f} ms"]
    if record["batch_throughput"] is not None:
        parts.append(f"batch={record['batch_throughput']:.1f} img/s")
    if acc and acc["value"] is not None:
        parts.append(f"acc={acc['value']:.3f}")
    if record["model_size_bytes"] is not None:
        parts.append(f"size={record['model_size_bytes'] / 1e6:.2f} MB")
    if lat["noisy"]:
        parts.append("NOISY")
    return " ".join(parts)


def measure_variant(variant_id: str, ctx: Context, record: dict,
                    say: Callable[[str], None], *, with_accuracy: bool = True) -> None:
    """Fill ``record`` with the measurements of one variant (raises on any failure)."""
    variant = load_class(variant_id)()
    profile: Profile = ctx.profile
    say("preparing...")
    t0 = time.perf_counter()
    variant.prepare(ctx)
    prepare_s = time.perf_counter() - t0
    # Preparation (a quantiser's calibration) is not serving: its peak is kept apart.
    rss = {"prepare": measure.peak_rss_mb()}
    reset = measure.reset_peak_rss()

    say("loading (cold start)...")
    served, load_ms, first_ms = measure.cold_start(variant, ctx)
    rss["load"] = measure.peak_rss_mb()
    info = dict(served.info)
    record["route"] = info.pop("route", None)
    record["providers"] = {"requested": list(served.providers_requested),
                           "active": list(served.providers_active)}
    record["served_model"] = served.model_path.name if served.model_path else None
    record["model_size_bytes"] = model_size(served.model_path)
    record["cold_start_ms"] = load_ms + first_ms

    evaluation = ctx.splits["evaluation"]
    unscorable = info.pop("accuracy_unavailable", None)
    if not with_accuracy:
        pass  # a later repeat: the first one measured it (repeats.merge keeps that)
    elif unscorable:
        # A model with another label set (an ImageNet .tflite) still has a latency worth
        # measuring, but no accuracy against these labels: null, with the reason beside it.
        say(f"accuracy not measured: {unscorable}")
        record["accuracy"] = {"value": None, "correct": None,
                              "total": len(evaluation.labels), "split": "evaluation",
                              "reason": unscorable}
    else:
        say(f"accuracy on {len(evaluation.labels)} evaluation images...")
        record["accuracy"] = {**measure.accuracy(served, evaluation, ctx.num_classes,
                                                 profile.batch_size), "split": "evaluation"}

    say("measuring latency...")
    x1 = ctx.sample(1)
    infer = served.infer
    single = measure.timed_loop(lambda: infer(x1), profile.single)
    record["latency_ms"] = summarize_ns(single.samples_ns, single.duration_s)
    record.update(repeats.fps_fields(record["latency_ms"]))

    say(f"measuring batch {profile.batch_size}...")
    call, batch_mode = measure.batch_call(served, ctx, profile.batch_size)
    batch = measure.timed_loop(call, profile.batch)
    record["batch_latency_ms"] = summarize_ns(batch.samples_ns, batch.duration_s)
    record["batch_throughput"] = profile.batch_size * 1000.0 / record["batch_latency_ms"]["mean"]
    rss["steady"] = measure.peak_rss_mb()

    record["samples"] = {"latency_ns": single.samples_ns, "batch_ns": batch.samples_ns}
    record["info"] = {
        **info,
        "description": variant.description,
        "prepare_s": round(prepare_s, 3),
        # True: an earlier repeat's artifacts were served again (variants/reuse.py).
        "prepare_reused": bool(getattr(variant, "reused", False)),
        "cold_start": {"load_ms": load_ms, "first_infer_ms": first_ms},
        "batch_mode": batch_mode,
        "minimums_met": {"latency": single.minimums_met, "batch": batch.minimums_met},
        # Without a reset of the peak (no /proc/self/clear_refs) load and steady include
        # the preparation's peak: the record says which.
        "peak_rss_mb": {**rss, "prepare_excluded": reset},
    }
    record.update(status="ok", finished_at=results.now_iso())


def _recorded(record: dict, say: Callable[[str], None], work: Callable[[], None]) -> bool:
    """Run ``work``; a skip or any failure becomes ``record``'s (and is said). True: it ran."""
    try:
        work()
    except VariantSkipped as e:
        finish_skipped(record, one_line(e))
        say(f"skipped: {record['reason']}")
    except Exception as e:  # noqa: BLE001 - any failure of one variant is its error record
        finish_error(record, e)
        say(f"error: {record['error_type']}: {record['reason']}")
    else:
        return True
    return False


def run_variant(variant_id: str, ctx: Context, run: dict, say: Callable[[str], None], *,
                with_accuracy: bool = True) -> dict:
    """One variant in this process: its record, whatever happens to it."""
    record = base_record(variant_id, run=run)
    health = environment.board_health()  # a Pi's throttling/temperature; None elsewhere
    before = environment.stability(health)
    try:
        if _recorded(record, say, lambda: measure_variant(variant_id, ctx, record, say,
                                                          with_accuracy=with_accuracy)):
            say(f"ok {_fmt(record)}")
    finally:
        # Free the last session (its threads, GPU memory) before the next variant loads.
        gc.collect()
        info = record.setdefault("info", {})
        after_health = environment.board_health() if health is not None else None
        if health is not None:
            info["board_health"] = {"before": health, "after": after_health}
        info["stability"] = environment.stability_change(before,
                                                         environment.stability(after_health))
    return record


def prepare_variant(variant_id: str, ctx: Context, run: dict,
                    say: Callable[[str], None]) -> dict:
    """Only make the variant's artifacts, in a child of the prepare-ahead step: ``{"status":
    "prepared", "prepare_s", "peak_rss_mb"}``, or the variant's skipped or error record."""
    record = base_record(variant_id, run=run)
    started = time.perf_counter()
    if not _recorded(record, say, lambda: load_class(variant_id)().prepare(ctx)):
        return record
    seconds = time.perf_counter() - started
    say(f"prepared in {seconds:.1f} s")
    # The helpers (quantiser, converter) are child processes: their peak is not this one's.
    return {"status": PREPARED, "prepare_s": round(seconds, 3),
            "peak_rss_mb": {"process": measure.peak_rss_mb(),
                            "helpers": measure.children_peak_rss_mb()}}


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
                        say(f"{count} repeats: pooled {_fmt(record)}; p50 spread "
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
