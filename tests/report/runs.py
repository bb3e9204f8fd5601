"""Build run folders (docs/RESULTS.md layout, the current schema_version) from synthetic records.

Latencies come from seeded lognormal raw samples and every stats field is computed from them
(nearest rank), so a record reads like one the engine writes. The headline numbers the tests
reason about (p50, batch throughput, size) are pinned exactly, to test boundaries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from servebench.collect import collect
from servebench.schema import SCHEMA_VERSION
from servebench_engine.record import base_record
from servebench_engine.stats import summarize_ns

BATCH = 32


def stats_ms(samples_ns: list[int]) -> dict:
    """The stats object exactly as the engine writes it (ci95 and valid included)."""
    return summarize_ns(samples_ns)


def samples(p50_ms: float, n: int, spread: float, seed: int, *, pin: bool = True) -> list[int]:
    """n raw samples (ns), in a random order: lognormal around p50_ms, whose nearest-rank median
    is exactly p50_ms when ``pin``."""
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(0.0, spread, n)
    if not pin:
        return [max(int(x * p50_ms * 1e6), 1) for x in raw]
    mid = int(np.argsort(raw)[math.ceil(0.5 * n) - 1])
    target = round(p50_ms * 1e6)
    ns = [max(int(x / raw[mid] * target), 1) for x in raw]
    ns[mid] = target
    return ns


def repeated(p50_ms: float, n: int, spread: float, seed: int, scales, *,
             pin: bool = True) -> tuple[list[int], list[int], list[float]]:
    """Pooled samples of one repeat per scale (repeat r around p50_ms * scales[r]), their
    counts and each repeat's nearest-rank median (ms), as the engine pools repeats."""
    pooled, counts, medians = [], [], []
    for r, scale in enumerate(scales):
        ns = samples(p50_ms * scale, n, spread, seed + 7919 * r, pin=pin)
        pooled += ns
        counts.append(len(ns))
        medians.append(summarize_ns(ns)["p50"])
    return pooled, counts, medians


def repeats_block(p50s: list[float], batch: list[float]) -> dict:
    spread = max(p50s) / min(p50s) if len(p50s) > 1 else None
    return {"count": len(p50s), "planned": len(p50s), "p50_ms": p50s,
            "batch_throughput": batch, "cold_start_ms": [80.0] * len(p50s), "spread": spread,
            "replicable": None if spread is None else spread <= 1.05,
            "rule": "largest / smallest repeat median <= 1.05"}


def environment(host: str, cpu: str = "AMD EPYC 7763 64-Core Processor") -> dict:
    return {
        "hostname": host, "cpu_model": cpu, "cpu_flags": ["avx2", "fma", "avx512_vnni"],
        "cores": 2, "threads": 2, "memory_gb": 7.7, "gpu": None, "driver": None,
        "libraries": {"onnxruntime": "1.32.0", "numpy": "2.4.6"},
        "git_revision": "0123abcd", "time": "2026-11-23T19:15:00Z",
    }


def record(variant: str, *, host: str = "localhost", host_kind: str = "local",
           status: str = "ok", reason: str | None = None, p50_ms: float = 2.0,
           batch_img_s: float | None = 1500.0, size_bytes: int | None = 3_500_000,
           correct: int = 61, total: int = 110, synthetic: bool = True,
           random_weights: bool = True, route: str | None = None,
           providers: tuple[str, ...] = ("CPUExecutionProvider",), seed: int = 0,
           spread: float = 0.04, n: int = 300, profile: str = "quick",
           model: str = "random-init", scales=(1.0,), pin: bool = True,
           energy: dict | None = None, load: dict | None = None) -> dict:
    """One record; ``scales`` gives one repeat per entry, each around ``p50_ms * scale``;
    ``energy`` the meter's figure (``energy_figure``), ``load`` the load mode's (``load_group``)."""
    # Every field of the engine's record type (servebench_engine.record), then this one's values.
    rec = base_record(variant, run={
        "host": host, "host_kind": host_kind, "profile": profile, "batch_size": BATCH,
        "model": {"name": model,
                  "source": "random-init" if random_weights else "/models/food11.pth",
                  "random_weights": random_weights, "format": "onnx", "sha256": "ab" * 32},
        "data": {"source": "synthetic" if synthetic else "food11", "synthetic": synthetic,
                 "root": "/tmp/food11", "counts": {"validation": 55, "evaluation": total}},
        "environment": environment(host)})
    rec.update({
        "status": status, "reason": reason,
        "providers": {"requested": list(providers), "active": []}, "route": route,
        "started_at": "2026-11-23T19:15:00Z", "finished_at": "2026-11-23T19:15:20Z",
    })
    if status != "ok":
        rec["error_type"] = "RuntimeError" if status == "error" else None
        return rec
    lat, counts, p50s = repeated(p50_ms, n, spread, seed, scales, pin=pin)
    stats = stats_ms(lat)
    rec.update({
        "served_model": f"{variant}.onnx", "model_size_bytes": size_bytes,
        "accuracy": {"correct": correct, "total": total, "value": correct / total,
                     "split": "evaluation"},
        "latency_ms": stats, "single_fps_from_p50": 1000 / stats["p50"],
        "single_fps_trials": len(lat) / (sum(lat) / 1e9),
        "cold_start_ms": 40 * p50_ms + 30,
        "providers": {"requested": list(providers), "active": list(providers)},
    })
    rec["samples"]["latency_ns"] = lat
    rec["samples"]["repeat_counts"]["latency"] = counts
    rec["repeats"] = repeats_block(p50s, [])
    if batch_img_s is not None:
        batch, bcounts, _ = repeated(BATCH / batch_img_s * 1000, 40, spread, seed + 1, scales)
        rec.update({"batch_latency_ms": stats_ms(batch), "batch_throughput": batch_img_s})
        rec["samples"]["batch_ns"] = batch
        rec["samples"]["repeat_counts"]["batch"] = bcounts
        rec["repeats"]["batch_throughput"] = [batch_img_s] * len(scales)
    if energy is not None:
        rec["energy"] = energy
    rec["load"] = load
    return rec


def energy_figure(joules_per_inference: float | None, source: str | None = "rapl", *,
                  valid: bool = True, reason: str | None = None, inferences: int = 300) -> dict:
    """The energy meter's figure (servebench_engine.energy Window.figure) for a window of
    ``inferences`` at ``joules_per_inference``; not valid: the figures null, ``reason`` why."""
    window_s = 3.0
    joules = joules_per_inference * inferences if valid and joules_per_inference is not None \
        else None
    return {"source": source, "valid": valid, "reason": None if valid else reason,
            "inferences": inferences, "window_s": window_s, "min_window_s": 0.01,
            "update_period_s": 0.001, "joules": joules,
            "joules_per_inference": joules_per_inference if valid else None,
            "mean_watts": joules / window_s if joules is not None else None,
            "idle_watts": None, "joules_per_inference_above_idle": None, "sources": [],
            "unavailable": {} if source else {"rapl": "no /sys/class/powercap"}}


def md1_latencies_ns(rate: float, service_ms: float, n: int, seed: int) -> list[int]:
    """Latencies of ``n`` Poisson arrivals at ``rate`` served one at a time in ``service_ms``
    each (an M/D/1 queue, Lindley's recursion), from each request's scheduled arrival."""
    gaps = np.random.default_rng(seed).exponential(1000.0 / rate, n)
    wait, out = 0.0, []
    for gap in gaps:
        out.append(int((wait + service_ms) * 1e6))
        wait = max(0.0, wait + service_ms - gap)
    return out


def _windows(count: int, rate: float) -> list[dict]:
    """Three equal windows of ``count`` requests at ``rate`` (load.stability.Window.as_dict)."""
    span = count / rate / 3
    return [{"start_s": 0.5 + k * span, "length_s": span, "arrivals": count // 3,
             "completions": count // 3, "throughput_rps": rate, "p50_ms": None, "p99_ms": None,
             "unfinished": 0} for k in range(3)]


def load_point(rate: float, service_ms: float, *, count: int = 700, stable: bool = True,
               seed: int = 0) -> dict:
    """One open-loop point in the engine's shape (load.openloop.summarize_point + windows)."""
    # One seed at every rate (common random numbers): p99 grows with the rate, as in a queue.
    lat = md1_latencies_ns(rate, service_ms, count, seed)
    windows = _windows(count, rate)
    short = {"mean": service_ms, "p50": service_ms, "p99": service_ms, "max": service_ms}
    return {"offered_rps": round(rate, 3), "arrivals": count,
            "achieved_rps": round(rate if stable else rate * 0.8, 3),
            "latency_ms": summarize_ns(lat), "unfinished": 0 if stable else count // 5,
            "wait_ms": short, "service_ms": short, "dispatch_lag_ms": short,
            "windows": windows, "window_s": windows[0]["length_s"], "workers": 1, "stable": stable,
            "reasons": [] if stable else ["completions differ from arrivals by more than 10% "
                                          "in 3 of the last 3 windows (not keeping up)"]}


def load_group(service_ms: float = 2.0, bound_ms: float = 20.0, *, count: int = 700,
               stable_below: float = 0.9, profile: str = "full",
               unstable_rates: tuple[float, ...] = ()) -> dict:
    """The record's ``load`` field as the engine writes it (load_mode.measure_load: run_load's
    dict, ``load_profile`` and ``bound_ms``) for one worker of fixed service time: each point an
    M/D/1 queue, stable below ``stable_below`` of the ceiling (and not at ``unstable_rates``),
    ``count`` requests each; the knee found by the engine's own search (load.knee)."""
    from servebench_engine.load.knee import search
    from servebench_engine.load.run import knee_summary
    from servebench_engine.load.settings import LoadSettings

    ceiling = 1000.0 / service_ms
    settings = LoadSettings(p99_bound_ms=bound_ms, min_queries_p99=min(count, 662))

    def measure(rate: float) -> dict:
        stable = rate < stable_below * ceiling and round(rate, 3) not in unstable_rates
        return load_point(rate, service_ms, count=count, stable=stable)

    curve = [measure(f * ceiling) for f in settings.rate_fractions]
    knee = search(measure, ceiling, settings)
    curve = sorted(curve + [p["point"] for p in knee["probes"]], key=lambda p: p["offered_rps"])
    closed = [{"concurrency": k, "sessions_used": 1, "throughput_rps": ceiling,
               "latency_ms": summarize_ns([int(service_ms * k * 1e6)] * 100),
               "windows": _windows(300, ceiling), "stable": True, "reasons": [],
               "layout": {"sessions": 1, "intra_op_threads": 2}} for k in (1, 2)]
    gen_rate = max(p["offered_rps"] for p in curve)
    max_issue = 250_000.0
    return {
        "load_profile": profile, "bound_ms": bound_ms, "cpus": 2,
        "settings": settings.as_dict(),
        "closed_loop": {"points": closed, "best": {
            "concurrency": 1, "layout": closed[0]["layout"], "throughput_rps": ceiling,
            "stable": True}},
        "layout": {"sessions": 1, "intra_op_threads": 2, "workers": 1, "ceiling_rps": ceiling,
                   "ceiling_stable": True, "why": "the highest closed-loop throughput of every "
                   "layout and concurrency (stable points first)"},
        "open_loop": {"workers": 1, "points": curve},
        "knee": knee_summary(knee),
        "best_closed_loop_rps": ceiling,
        "knee_share_of_ceiling": round(knee["knee_rps"] / ceiling, 4) if knee["knee_rps"]
        else None,
        "generator": {"rate_rps": gen_rate,
                      "overhead_ms": {"mean": 0.09, "p50": 0.07, "p99": 0.41, "max": 1.2},
                      "dispatch_lag_ms": {"mean": 0.05, "p50": 0.04, "p99": 0.3, "max": 1.1},
                      "stable": True, "max_issue_rps": max_issue, "saturation_requests": 20000,
                      **({"knee_share_of_max_issue": round(knee["knee_rps"] / max_issue, 4)}
                         if knee["knee_rps"] else {})},
        "duration_s": 95.0,
    }


def write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def models(recs: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["model"]["name"] for r in recs))


def key(rec: dict, several: bool) -> str:
    """The record key of the issue 12 contract: the variant, or <model>__<variant>."""
    return f"{rec['model']['name']}__{rec['variant']}" if several else rec["variant"]


def engine_suite(recs: list[dict], *, host: str, kind: str, profile: str) -> dict:
    """runs/<runtime>/suite.json as the engine writes it for these records."""
    several = len(models(recs)) > 1
    return {
        "schema_version": SCHEMA_VERSION, "status": "complete", "host": host, "host_kind": kind,
        "profile": profile, "model": recs[0]["model"], "data": recs[0]["data"],
        "models": models(recs),
        "variants": list(dict.fromkeys(r["variant"] for r in recs)),
        "results": {key(r, several): {"status": r["status"], "reason": r["reason"],
                                      "p50_ms": (r["latency_ms"] or {}).get("p50"),
                                      "file": f"{key(r, several)}.json"} for r in recs},
        "started_at": "2026-11-23T19:15:00.000Z", "finished_at": "2026-11-23T19:17:40.000Z",
    }


def write_run(root: Path, run_id: str, hosts: dict[str, dict], *, profile: str = "quick",
              run_json: bool = True) -> Path:
    """hosts: name -> {"kind", "status" ("ok"|"failed"), "reason", "records": [record...],
    "site", "node_type" (optional, the inventory's)}.
    The records and each host's engine summary are written as the engine does; the run-level
    files by servebench.collect itself, as the collect play does."""
    run = root / run_id
    run.mkdir(parents=True)
    plan_hosts = []
    for name, h in hosts.items():
        recs = h.get("records", [])
        several = len(models(recs)) > 1
        for r in recs:
            write_json(run / name / f"{key(r, several)}.json", r)
        if recs:
            write_json(run / name / "runs" / "local" / "suite.json",
                       engine_suite(recs, host=name, kind=h["kind"], profile=profile))
        failure = ({"stage": "benchmark", "reason": h.get("reason") or "failed"}
                   if h.get("status") == "failed" else {})
        (run / name).mkdir(parents=True, exist_ok=True)
        plan_hosts.append({"host": name, "kind": h["kind"], "failure": failure,
                           **{k: h[k] for k in ("site", "node_type") if k in h}})
    collect(run, {"run_id": run_id, "profile": profile, "variants": [], "model": "",
                  "tflite_model": "", "started_at": "2026-11-23T19:15:00Z", "repo": str(root),
                  "hosts": plan_hosts})
    # The tests point results/latest themselves where they need it.
    (root / "latest").unlink(missing_ok=True)
    if not run_json:
        (run / "run.json").unlink()
    return run


# A local quick run with every CPU variant, realistic for a 2-core laptop.
LOCAL_VARIANTS = (
    ("torch-eager", 9.8, 310.0, 14_210_000),
    ("torch-compile", 7.9, 380.0, 14_210_000),
    ("onnx-cpu", 3.4, 640.0, 14_030_000),
    ("onnx-optimized", 3.1, 700.0, 13_990_000),
    ("onnx-int8-dynamic", 5.6, 420.0, 3_620_000),
    ("onnx-int8-static-aggressive", 1.9, 1120.0, 2_415_126),
    ("onnx-int8-static-conservative", 2.4, 980.0, 3_110_000),
    ("openvino", 2.2, 1010.0, 14_030_000),
    ("tflite", 6.3, None, 3_580_000),
)


def local_run(root: Path, run_id: str = "20261123T191500Z-local-quick") -> Path:
    recs = [record(v, p50_ms=p50, batch_img_s=bt, size_bytes=size, seed=i,
                   route="neural-compressor 3.7.1 static QOperator" if "static" in v else None)
            for i, (v, p50, bt, size) in enumerate(LOCAL_VARIANTS)]
    recs += [record("onnx-cuda", status="skipped", reason="no CUDA GPU on this host"),
             record("onnx-tensorrt", status="skipped", reason="no CUDA GPU on this host")]
    return write_run(root, run_id, {"localhost": {"kind": "local", "records": recs}})


HOSTILE = "<script>alert('x')</script> | <img src=x onerror=alert(1)> **bold**"


def cluster_run(root: Path, run_id: str = "20261124T101500Z-tacc-edge-full") -> Path:
    """A testbed run: an EPYC server, a GPU server that failed, a Pi 5 with a crashed variant,
    on a trained model and the real Food-11 data (no warning expected)."""
    real = {"synthetic": False, "random_weights": False, "profile": "full"}
    cpu = [record(v, host="node-cpu", host_kind="cpu_server", p50_ms=p50, batch_img_s=bt,
                  size_bytes=size, seed=i, correct=2900, total=3347, **real)
           for i, (v, p50, bt, size) in enumerate((
               ("onnx-cpu", 3.2, 1450.0, 9_220_000),
               ("onnx-optimized", 2.9, 1600.0, 9_180_000),
               ("onnx-int8-static-aggressive", 1.4, 3100.0, 2_415_126),
               ("openvino", 1.7, 2600.0, 9_220_000)))]
    edge = [record("tflite", host="pi5", host_kind="edge", p50_ms=13.2, batch_img_s=None,
                   size_bytes=3_580_000, seed=7, correct=2850, total=3347, **real),
            record("onnx-int8-static-aggressive", host="pi5", host_kind="edge", p50_ms=21.0,
                   batch_img_s=60.0, size_bytes=2_415_126, seed=8, correct=2890, total=3347,
                   **real),
            record("onnx-cpu", host="pi5", host_kind="edge", status="error", reason=HOSTILE,
                   **real)]
    return write_run(root, run_id, {
        "node-cpu": {"kind": "cpu_server", "records": cpu},
        "node-gpu": {"kind": "gpu_server", "status": "failed",
                     "reason": "nvidia-smi found no GPU: the lease's node has no A100"},
        "pi5": {"kind": "edge", "records": edge},
    }, profile="full")


# The three options the study prices, and localhost: (kind, site, node_type, records).
def options_run(root: Path, run_id: str = "20261204T101500Z-chi-full") -> Path:
    """A server CPU, a server GPU (its CPU variant recorded as cpu_server), a Pi 5 and
    localhost; energy and cost figures present, missing and not valid, a few of each."""
    def rec(variant, host, kind, p50, batch, energy, **kw):
        return record(variant, host=host, host_kind=kind, p50_ms=p50, batch_img_s=batch,
                      energy=energy, n=700, **kw)

    hosts = {
        "node-cpu": {"kind": "cpu_server", "site": "tacc", "node_type": "compute_liqid",
                     "records": [
                         rec("onnx-cpu", "node-cpu", "cpu_server", 3.2, 1450.0,
                             energy_figure(0.05, "rapl"), seed=1),
                         rec("openvino", "node-cpu", "cpu_server", 1.7, 2600.0,
                             energy_figure(None, "rapl", valid=False, reason=(
                                 "window 0.2 s is shorter than 10 sensor periods (0.5 s): "
                                 "run the loop at least that long")), seed=2)]},
        "node-gpu": {"kind": "gpu_server", "site": "CHI@UC", "node_type": "compute_gigaio",
                     "records": [
                         rec("onnx-cuda", "node-gpu", "gpu_server", 1.1, 9000.0,
                             energy_figure(0.02, "rapl+nvml"), seed=3),
                         rec("onnx-tensorrt", "node-gpu", "gpu_server", 0.8, 15000.0, None,
                             seed=4),
                         rec("onnx-int8-dynamic", "node-gpu", "cpu_server", 5.5, 700.0,
                             energy_figure(0.09, "rapl"), seed=5)]},
        "pi5": {"kind": "edge", "site": "edge", "node_type": "raspberrypi5", "records": [
            rec("tflite", "pi5", "edge", 13.2, None, energy_figure(0.3, "pi5-pmic"), seed=6)]},
        "localhost": {"kind": "local", "records": [
            rec("onnx-cpu", "localhost", "local", 3.4, 640.0,
                energy_figure(None, None, valid=False,
                              reason="no energy source on this node (rapl: no powercap)"),
                seed=7)]},
    }
    return write_run(root, run_id, hosts, profile="full")
