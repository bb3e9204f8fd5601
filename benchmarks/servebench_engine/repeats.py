"""One record from the repeats of a variant: pooled samples, each repeat's median kept.

Every repeat is a fresh process (worker.py) timing the same loops. The record's ``latency_ms``
and ``batch_latency_ms`` are the statistics of all repeats' samples pooled (in repeat order;
``samples.repeat_counts`` splits them again), and ``repeats`` keeps what tells whether the
processes agreed: each repeat's p50 and batch throughput, their spread (largest / smallest
p50) and ``replicable`` (spread <= 1.05). Accuracy, cold start, route and providers are the
first repeat's (accuracy is measured there only: it does not change between processes).
"""

from __future__ import annotations

import copy

from .record import FIELDS
from .stats import summarize_ns

REPLICABLE_SPREAD = 1.05
RULE = "largest / smallest repeat median <= 1.05"


def fps_fields(latency_ms: dict) -> dict:
    """Single-sample FPS both ways: from the median (1000 / p50 ms) and seed 002's trials /
    total timed seconds (which counts the slow calls too)."""
    timed = latency_ms["duration_s"]
    return {"single_fps_from_p50": 1000.0 / latency_ms["p50"] if latency_ms["p50"] > 0 else None,
            "single_fps_trials": latency_ms["count"] / timed if timed > 0 else None}


def summary(parts: list[dict], planned: int) -> dict:
    """The ``repeats`` object of the ok repeats among ``parts``."""
    ok = [p for p in parts if p["status"] == "ok"]
    p50s = [p["latency_ms"]["p50"] for p in ok]
    spread = max(p50s) / min(p50s) if len(p50s) > 1 and min(p50s) > 0 else None
    return {
        "count": len(ok),
        "planned": planned,
        "p50_ms": p50s,
        "batch_throughput": [p["batch_throughput"] for p in ok],
        "cold_start_ms": [p["cold_start_ms"] for p in ok],
        "spread": spread,
        "replicable": None if spread is None else spread <= REPLICABLE_SPREAD,
        "rule": RULE,
    }


def _stability(parts: list[dict]) -> dict | None:
    marks = [p["info"].get("stability") for p in parts]
    if not all(marks):
        return None
    changed = [i for i, m in enumerate(marks, 1) if m.get("changed")]
    unknown = any(m.get("changed") is None for m in marks)
    return {"before": marks[0]["before"], "after": marks[-1]["after"],
            "changed": True if changed else (None if unknown else False),
            "changed_in_repeats": changed}


def _peak_rss(parts: list[dict]) -> dict | None:
    peaks = [p["info"].get("peak_rss_mb") for p in parts]
    if not all(peaks):
        return None
    return {k: max((pk[k] for pk in peaks if pk.get(k) is not None), default=None)
            for k in peaks[0]}


def _pooled(f, parts: list[dict], record: dict) -> dict:
    key = f.metadata["samples"]
    return summarize_ns([ns for p in parts for ns in p["samples"][key]],
                        sum(p[f.name]["duration_s"] for p in parts))


def _samples(f, parts: list[dict], record: dict) -> dict:
    return {"latency_ns": [ns for p in parts for ns in p["samples"]["latency_ns"]],
            "batch_ns": [ns for p in parts for ns in p["samples"]["batch_ns"]],
            "repeat_counts": {"latency": [len(p["samples"]["latency_ns"]) for p in parts],
                              "batch": [len(p["samples"]["batch_ns"]) for p in parts]}}


def _info(f, parts: list[dict], record: dict) -> dict:
    first, last = parts[0], parts[-1]
    info = copy.deepcopy(first["info"])
    info["minimums_met"] = {k: all(p["info"]["minimums_met"][k] for p in parts)
                            for k in ("latency", "batch")}
    for key, merged in (("stability", _stability(parts)), ("peak_rss_mb", _peak_rss(parts))):
        if merged is not None:
            info[key] = merged
    if "board_health" in first["info"]:
        info["board_health"] = {"before": first["info"]["board_health"]["before"],
                                "after": last["info"]["board_health"]["after"]}
    return info


def _median_figure(f, parts: list[dict], record: dict) -> dict | None:
    """An energy figure: the valid repeat's at the (lower) median joules per inference, so the
    figure stays one window's, whole (its watts, window and sources agree with each other)."""
    figures = [p[f.name] for p in parts]
    valid = sorted((fig["joules_per_inference"], i) for i, fig in enumerate(figures)
                   if fig and fig["valid"] and fig["joules_per_inference"] is not None)
    chosen = valid[(len(valid) - 1) // 2][1] if valid else 0
    out = copy.deepcopy(figures[chosen])
    if out is not None:
        out["repeat"] = chosen + 1
        out["repeats_joules_per_inference"] = [fig["joules_per_inference"] if fig else None
                                               for fig in figures]
    return out


# One function per rule of record.RULES ("per repeat": summary, given ``planned`` in merge):
# (field, the ok repeats, the record so far) -> the field's value.
RULES = {
    "first": lambda f, parts, record: copy.deepcopy(parts[0][f.name]),
    "last": lambda f, parts, record: copy.deepcopy(parts[-1][f.name]),
    "pooled": _pooled,
    "fps": lambda f, parts, record: fps_fields(record["latency_ms"])[f.name],
    "throughput": lambda f, parts, record: (record["batch_size"] * 1000.0
                                            / record["batch_latency_ms"]["mean"]),
    "concatenated": _samples,
    "by key": _info,
    "median figure": _median_figure,
}


def merge(parts: list[dict], planned: int) -> dict:
    """The record of a variant after ``len(parts)`` repeats (the last one may have failed): each
    field by its rule (record.RULES), in the record's field order."""
    last = parts[-1]
    if last["status"] != "ok":
        # A repeat that fails makes the variant an error (or skipped): its numbers would rest on
        # fewer processes than planned. The ok repeats' medians stay in ``repeats``.
        record = copy.deepcopy(last)
        if len(parts) > 1:
            record["reason"] = f"repeat {len(parts)}/{planned}: {record['reason']}"
        record["repeats"] = summary(parts, planned)
        return record
    rules = {**RULES, "per repeat": lambda f, parts, record: summary(parts, planned)}
    record = copy.deepcopy(parts[0])  # any key a variant added beyond the fields stays
    for f in FIELDS:
        record[f.name] = rules[f.metadata["rule"]](f, parts, record)
    return record
