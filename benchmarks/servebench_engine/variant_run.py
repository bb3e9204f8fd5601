"""One variant in this process: prepare, load, measure, and its record whatever happens.

What a worker child runs (worker.py), for one (model, variant, repeat), or for the slow
preparation of one variant ahead of any timing (suite.prepare_ahead): :func:`run_variant` and
:func:`prepare_variant`. Per variant: prepare (make artifacts, untimed) -> load + first
inference (cold start) -> accuracy on the evaluation split (first repeat only) -> single-sample
latency -> batch throughput -> the load mode (first repeat, the variants --load-variants names).

Energy: the node's meter (servebench_engine.energy) is detected once per child, reads the idle
node before the variant is loaded, and a window covers each timed loop's timed iterations
(not its warm-up); every figure is null with the reason where the node has no source.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Callable

from . import energy, load_mode, machine_state, measure, repeats, results
from .context import Context
from .profiles import Profile
from .record import base_record, finish_error, finish_skipped, one_line
from .stats import summarize_ns
from .variants import load_class
from .variants.base import VariantSkipped

# The status of a prepare-ahead child that made the variant's artifacts.
PREPARED = "prepared"
# How a measuring child finds its energy meter (tests put a fake source here).
detect_meter: Callable[[], energy.Meter] = energy.detect


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


def summary_line(record: dict) -> str:
    lat, acc = record["latency_ms"], record["accuracy"]
    parts = [f"p50={lat['p50']:.3f} ms", f"p99={lat['p99']:.3f} ms"]
    if record["batch_throughput"] is not None:
        parts.append(f"batch={record['batch_throughput']:.1f} img/s")
    if acc and acc["value"] is not None:
        parts.append(f"acc={acc['value']:.3f}")
    if record["model_size_bytes"] is not None:
        parts.append(f"size={record['model_size_bytes'] / 1e6:.2f} MB")
    knee = (record.get("load") or {}).get("knee")
    if knee and knee["knee_rps"]:
        parts.append(f"knee={knee['knee_rps']:.1f} req/s")
    if lat["noisy"]:
        parts.append("NOISY")
    return " ".join(parts)


def measure_variant(variant_id: str, ctx: Context, record: dict,
                    say: Callable[[str], None], *, with_accuracy: bool = True) -> None:
    """Fill ``record`` with the measurements of one variant (raises on any failure).
    ``with_accuracy``: this is the first repeat (accuracy and the load mode are measured)."""
    meter = detect_meter()
    try:
        _measure(variant_id, ctx, record, say, with_accuracy, meter)
    finally:
        meter.close()


def _timed(call: Callable[[], object], spec, meter: energy.Meter,
           images_per_call: int) -> tuple[measure.Loop, dict]:
    """A timed loop, at least the meter's shortest valid window where the spec's cap allows,
    and the energy figure of exactly its timed iterations."""
    window = meter.window()
    loop = measure.timed_loop(call, measure.at_least(spec, meter.min_window_s), around=window)
    return loop, window.figure(len(loop.samples_ns) * images_per_call)


def _measure(variant_id: str, ctx: Context, record: dict, say: Callable[[str], None],
             with_accuracy: bool, meter: energy.Meter) -> None:
    variant = load_class(variant_id)()
    profile: Profile = ctx.profile
    say("preparing...")
    t0 = time.perf_counter()
    variant.prepare(ctx)
    prepare_s = time.perf_counter() - t0
    # Preparation (a quantiser's calibration) is not serving: its peak is kept apart.
    rss = {"prepare": measure.peak_rss_mb()}
    reset = measure.reset_peak_rss()
    if meter.sources:
        say(f"energy: {meter.label}, reading the idle node...")
    idle = meter.idle(profile.energy_idle_s)

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
    single, single_energy = _timed(lambda: infer(x1), profile.single, meter, 1)
    record["latency_ms"] = summarize_ns(single.samples_ns, single.duration_s)
    record.update(repeats.fps_fields(record["latency_ms"]))
    record["energy"] = {**single_energy, "idle": idle}

    say(f"measuring batch {profile.batch_size}...")
    call, batch_mode = measure.batch_call(served, ctx, profile.batch_size)
    batch, record["batch_energy"] = _timed(call, profile.batch, meter, profile.batch_size)
    record["batch_latency_ms"] = summarize_ns(batch.samples_ns, batch.duration_s)
    record["batch_throughput"] = profile.batch_size * 1000.0 / record["batch_latency_ms"]["mean"]
    rss["steady"] = measure.peak_rss_mb()
    if with_accuracy and load_mode.wanted(variant_id, ctx):
        say("load mode (closed-loop sweep, Poisson open loop, knee)...")
        record["load"] = load_mode.measure_load(variant, ctx, say)

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
    health = machine_state.board_health()  # a Pi's throttling/temperature; None elsewhere
    before = machine_state.stability(health)
    try:
        if _recorded(record, say, lambda: measure_variant(variant_id, ctx, record, say,
                                                          with_accuracy=with_accuracy)):
            say(f"ok {summary_line(record)}")
    finally:
        # Free the last session (its threads, GPU memory) before the next variant loads.
        gc.collect()
        info = record.setdefault("info", {})
        after_health = machine_state.board_health() if health is not None else None
        if health is not None:
            info["board_health"] = {"before": health, "after": after_health}
        info["stability"] = machine_state.stability_change(before,
                                                         machine_state.stability(after_health))
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
