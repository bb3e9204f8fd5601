"""Run the selected variants one after another and write one record each, plus suite.json.

Per variant: prepare (make artifacts, untimed) -> load + first inference (cold start) ->
accuracy on the evaluation split -> single-sample latency -> batch throughput. A variant that
raises gets an error record and the next one runs; only KeyboardInterrupt (or SIGTERM) stops the
suite (suite.json then says ``interrupted``), and an OSError writing a record (``failed``).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import environment, measure, results
from .context import Context
from .data import Dataset
from .model import PreparedModel
from .models import context_for
from .profiles import Profile
from .stats import summarize_ns
from .variants import load_class
from .variants.base import VariantSkipped

SUITE_FILE = "suite.json"
ARTIFACTS = "artifacts"


@dataclass
class SuiteConfig:
    variants: list[str]
    profile: Profile
    out: Path
    host: str
    host_kind: str
    threads: int | None = None
    quantizer_python: str | None = None
    tflite_model: Path | None = None
    tflite_converter_python: str | None = None


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
                    say: Callable[[str], None]) -> None:
    """Fill ``record`` with the measurements of one variant (raises on any failure)."""
    variant = load_class(variant_id)()
    profile: Profile = ctx.profile
    say("preparing...")
    t0 = time.perf_counter()
    variant.prepare(ctx)
    prepare_s = time.perf_counter() - t0

    say("loading (cold start)...")
    served, load_ms, first_ms = measure.cold_start(variant, ctx)
    info = dict(served.info)
    record["route"] = info.pop("route", None)
    record["providers"] = {"requested": list(served.providers_requested),
                           "active": list(served.providers_active)}
    record["served_model"] = served.model_path.name if served.model_path else None
    record["model_size_bytes"] = model_size(served.model_path)
    record["cold_start_ms"] = load_ms + first_ms

    evaluation = ctx.splits["evaluation"]
    unscorable = info.pop("accuracy_unavailable", None)
    if unscorable:
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
    record["single_fps"] = 1000.0 / record["latency_ms"]["p50"]

    say(f"measuring batch {profile.batch_size}...")
    call, batch_mode = measure.batch_call(served, ctx, profile.batch_size)
    batch = measure.timed_loop(call, profile.batch)
    record["batch_latency_ms"] = summarize_ns(batch.samples_ns, batch.duration_s)
    record["batch_throughput"] = profile.batch_size * 1000.0 / record["batch_latency_ms"]["mean"]

    record["samples"] = {"latency_ns": single.samples_ns, "batch_ns": batch.samples_ns}
    record["info"] = {
        **info,
        "description": variant.description,
        "prepare_s": round(prepare_s, 3),
        "cold_start": {"load_ms": load_ms, "first_infer_ms": first_ms},
        "batch_mode": batch_mode,
        "minimums_met": {"latency": single.minimums_met, "batch": batch.minimums_met},
    }
    record.update(status="ok", finished_at=results.now_iso())


def run_variant(variant_id: str, ctx: Context, run: dict, say: Callable[[str], None]) -> dict:
    record = results.base_record(variant_id, run=run)
    health = environment.board_health()  # a Pi's throttling/temperature; None elsewhere
    try:
        measure_variant(variant_id, ctx, record, say)
    except VariantSkipped as e:
        results.finish_skipped(record, results.one_line(e))
        say(f"skipped: {record['reason']}")
    except Exception as e:  # noqa: BLE001 - any failure of one variant is its error record
        results.finish_error(record, e)
        say(f"error: {record['error_type']}: {record['reason']}")
    else:
        say(f"ok {_fmt(record)}")
    finally:
        # Free the last session (its threads, GPU memory) before the next variant loads.
        gc.collect()
        if health is not None:
            info = record.setdefault("info", {})
            info["board_health"] = {"before": health, "after": environment.board_health()}
    return record


def run_suite(cfg: SuiteConfig, models: list[PreparedModel], dataset: Dataset,
              log: Callable[[str], None] = print) -> dict:
    """Benchmark every selected variant of every model into ``cfg.out``; returns the summary."""
    artifacts = cfg.out / ARTIFACTS
    artifacts.mkdir(parents=True, exist_ok=True)
    log("recording the environment...")
    run = {
        "host": cfg.host,
        "host_kind": cfg.host_kind,
        "profile": cfg.profile.name,
        "data": dataset.describe(),
        "environment": environment.collect(cfg.threads),
        "batch_size": cfg.profile.batch_size,
    }
    several = len(models) > 1
    jobs = [(m, vid, results.record_key(m.name, vid, several))
            for m in models for vid in cfg.variants]
    summary = {
        "schema_version": results.SCHEMA_VERSION,
        "status": "running",
        "host": cfg.host,
        "host_kind": cfg.host_kind,
        "profile": cfg.profile.name,
        "model": models[0].describe(),
        "models": [m.name for m in models],
        "data": run["data"],
        "variants": list(cfg.variants),
        "results": {key: None for _, _, key in jobs},
        "started_at": results.now_iso(),
        "finished_at": None,
    }
    suite_path = cfg.out / SUITE_FILE
    results.write_record(suite_path, summary)
    total = len(jobs)
    try:
        for i, (model, vid, key) in enumerate(jobs, 1):
            prefix = f"[{i}/{total}] {key}: "

            def say(msg: str, prefix: str = prefix) -> None:
                log(prefix + msg)

            ctx = context_for(model, dataset, cfg, artifacts, log=say)
            record = run_variant(vid, ctx, {**run, "model": model.describe()}, say)
            results.write_record(cfg.out / f"{key}.json", record)
            summary["results"][key] = {
                "status": record["status"],
                "reason": record["reason"],
                "p50_ms": record["latency_ms"]["p50"] if record["latency_ms"] else None,
                "file": f"{key}.json",
            }
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
