"""Render report.md, report.html and plots/ for one run, all or nothing.

Everything is first written into a temporary folder beside the output, then renamed into place,
so an error leaves the previous report (or none) untouched, never a half-written one.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from ..errors import OutputError
from ..files import move_into, open_own_folder
from . import formatting as fmt
from .columns import REPORT, shown, variant_row
from .load import Host, Record, Run
from .plots import PLOT_NAMES, write_plots
from .targets import TARGET_HOST_KINDS, Target, Targets
from .verdict import (FAIL, INCONCLUSIVE, NA, PASS, CriterionResult, Judgement, TargetSummary,
                      Verdict, judge)

TEMPLATES = Path(__file__).parent / "templates"
REPORTS = ("report.md", "report.html")
PLOTS_DIR = "plots"
_MARK = {PASS: "✓", FAIL: "✗", NA: "?", INCONCLUSIVE: "~"}
_CSS = {PASS: "pass", FAIL: "fail", NA: "na", INCONCLUSIVE: "inconclusive"}


@dataclass(frozen=True)
class Written:
    paths: tuple[Path, ...]
    summary: tuple[str, ...]      # one plain-text line per target


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # report.html.j2 escapes everything it prints; report.md.j2 uses the md filter instead.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_cell
    return env


# What can open raw HTML or an autolink in CommonMark: `<` before a letter, `/`, `!` or `?`.
_HTML_OPENER = re.compile(r"<(?=[A-Za-z/!?])")


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell, whatever a reason string holds: one line, no
    column breaks, no code spans, and no raw HTML (a backslash makes `<` literal in CommonMark);
    a plain `p50 < 3 ms` stays readable."""
    text = " ".join(str(value).split())
    for char in "\\|`":
        text = text.replace(char, "\\" + char)
    return _HTML_OPENER.sub(r"\\<", text)


# ---- what the templates show -------------------------------------------------------------


def criterion_text(r: CriterionResult) -> str:
    c = r.criterion
    needs = f"(needs {c.symbol} {fmt.threshold(r.threshold)} {c.unit})"
    if r.value is None:
        # A FAIL without a value: the load mode's knee, failed by a point (verdict.judge_knee).
        return f"{c.metric} {'fail' if r.outcome == FAIL else 'n/a'}: {r.why} {needs}"
    ci = f", 95 % CI [{fmt.sig(r.ci[0])}, {fmt.sig(r.ci[1])}]" if r.ci else ""
    text = f"{c.metric} {fmt.against(r.value, r.threshold)} {c.unit}{ci} {needs}"
    if r.outcome == INCONCLUSIVE:
        return f"{text}: inconclusive, {r.why}"
    return f"{text}: {r.why}" if r.why and r.outcome == FAIL else text


def target_rule(target: Target) -> str:
    return ", ".join(f"{c.metric} {c.symbol} {fmt.threshold(t)} {c.unit}"
                     for c, t in target.criteria)


def _pair(j: Judgement, run: Run) -> str:
    values = ", ".join(f"{r.criterion.metric} {fmt.against(r.value, r.threshold)} {r.criterion.unit}"
                       for r in j.results if r.value is not None)
    return f"{run.label(j.record)} on {j.host.name} ({values})"


def _undecided(j: Judgement, run: Run) -> str:
    whys = "; ".join(f"{r.criterion.metric}: {r.why}" for r in j.results
                     if r.outcome == INCONCLUSIVE)
    return f"{run.label(j.record)} on {j.host.name} ({whys})"


def summary_line(s: TargetSummary, run: Run) -> str:
    """One plain-text line per target: who meets it on its hardware, and indicatively elsewhere."""
    kinds = "/".join(s.target.judged_on)
    if s.met:
        line = "met by " + "; ".join(_pair(j, run) for j in s.met)
    elif s.judged:
        line = f"none met ({s.judged} variant(s) judged on {kinds} hardware)"
    else:
        failed = [f"{h.name} failed: {h.reason}" for h in run.hosts
                  if h.status == "failed" and h.kind in s.target.judged_on]
        line = f"not measured: no {kinds} host with results in this run"
        line += f" ({'; '.join(failed)})" if failed else ""
    if s.inconclusive:
        line += "; inconclusive: " + "; ".join(_undecided(j, run) for j in s.inconclusive)
    others = {j.host.name for j in s.indicative_met} | {
        h.name for h in run.hosts if h.status == "ok" and (h.kind not in TARGET_HOST_KINDS
                                                            or h.environment.get("emulated"))}
    if others:
        met = "; ".join(_pair(j, run) for j in s.indicative_met)
        line += (f". On {', '.join(sorted(others))} (not the target hardware, indicative only): "
                 + (f"met by {met}" if met else "none met"))
    return f"{s.target.title}: {line}"


def _cell(j: Judgement | None, host: Host) -> dict:
    if j is None:  # a target host judged only on its own targets
        return {"outcome": f"not judged ({host.kind} host)", "css": "skip", "indicative": False,
                "checks": []}
    return {
        "outcome": j.outcome,
        "css": _CSS[j.outcome],
        "indicative": j.indicative,
        "checks": [{"mark": _MARK[r.outcome], "css": _CSS[r.outcome],
                   "text": criterion_text(r)} for r in j.results],
    }


def _verdict_row(run: Run, host: Host, rec: Record, verdict: Verdict, targets: Targets) -> dict:
    judged = verdict.for_pair(host, rec)
    return {"host": host.name, "kind": host.kind, "variant": run.label(rec),
            "cells": [_cell(judged.get(t.id), host) for t in targets.targets]}


def _variant_groups(run: Run) -> list[dict]:
    """The variant rows, one group per model (one unnamed group when the run has one model)."""
    records = [r for _, r in run.records()]
    rows = [(r.model, variant_row(h, r, records)) for h, r in run.records() if r.data]
    if len(run.models) <= 1:
        return [{"model": None, "rows": [row for _, row in rows]}]
    return [{"model": m, "rows": [row for model, row in rows if model == m]}
            for m in dict.fromkeys(model for model, _ in rows)]


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows = []
        for key, sub in value.items():
            rows += flatten(sub, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif prefix.endswith("_bytes") and isinstance(value, int) and not isinstance(value, bool):
        value = f"{fmt.sig(value / 1e9)} GB ({value:,} bytes)"
    return [(prefix, "" if value is None else str(value))]


def _first(run: Run, key: str, pick) -> Any:
    values = [r.data.get(key) for _, r in run.records() if r.data.get(key)]
    return pick(values) if values else None


def _warnings(run: Run) -> list[str]:
    data = [r.data for _, r in run.records() if r.data]
    warnings = []
    synthetic = sorted({(d.get("data") or {}).get("source") or "synthetic" for d in data
                        if (d.get("data") or {}).get("synthetic")})
    if synthetic:
        warnings.append("The images are SYNTHETIC, not Food-11: accuracy is meaningless. "
                        "Latency, throughput and size are still real measurements.")
    if any((d.get("model") or {}).get("random_weights") for d in data):
        warnings.append("The model has RANDOM WEIGHTS (no trained model was given): accuracy is "
                        "meaningless. Latency, throughput and size are still real measurements.")
    return warnings


def build_context(run: Run, targets: Targets, verdict: Verdict, plots: list) -> dict:
    meta = run.meta
    profiles = sorted({r.data["profile"] for _, r in run.records() if r.data.get("profile")})
    env_revs = sorted({h.environment.get("git_revision") for h in run.hosts
                       if h.environment.get("git_revision")})
    ok_pairs = [(h, r) for h, r in run.records() if h.status == "ok" and r.ok]
    emulated = sorted(h.name for h in run.hosts if h.environment.get("emulated"))
    nontarget = sorted(h.name for h in run.hosts
                       if h.kind not in TARGET_HOST_KINDS and h.name not in emulated)
    return {
        "run": {
            "id": run.run_id,
            "path": str(run.path),
            "profile": meta.get("profile") or ", ".join(profiles) or "unknown",
            "started": meta.get("started_at") or _first(run, "started_at", min) or "unknown",
            "finished": meta.get("finished_at") or _first(run, "finished_at", max) or "unknown",
            "git": meta.get("git_revision") or ", ".join(env_revs) or "unknown",
            "hosts": [{"name": h.name, "kind": h.kind, "status": h.status} for h in run.hosts],
            "notes": run.notes + [f"{h.name}: {n}" for h in run.hosts for n in h.notes],
        },
        "rendered_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "warnings": _warnings(run),
        "nontarget_hosts": nontarget,
        "emulated_hosts": emulated,
        "targets_source": str(targets.source),
        "targets": [{"title": t.title, "hardware": t.hardware, "judged_on": ", ".join(t.judged_on),
                     "rule": target_rule(t)} for t in targets.targets],
        "summary": [summary_line(s, run) for s in verdict.summaries],
        "verdict_rows": [_verdict_row(run, h, r, verdict, targets) for h, r in ok_pairs],
        "columns": [c.header for c in shown(REPORT, [r for _, r in run.records()])],
        "variant_groups": _variant_groups(run),
        "problems": [{"host": h.name, "variant": run.label(r), "status": r.status,
                      "reason": r.reason or "no reason given"}
                     for h, r in run.records() if not r.ok],
        "failed_hosts": [{"name": h.name, "kind": h.kind, "reason": h.reason}
                         for h in run.hosts if h.status == "failed"],
        "environments": [{"host": h.name, "rows": flatten(h.environment)}
                         for h in run.hosts if h.environment],
        "plots": [{"src": f"{PLOTS_DIR}/{p.name}", "title": p.title, "caption": p.caption,
                   "missing": p.missing} for p in plots],
    }


# ---- writing --------------------------------------------------------------------------------


def write_report(run: Run, targets: Targets, out_dir: Path) -> Written:
    """Render into a temporary folder inside `out_dir`, then move the results into place."""
    out_dir = Path(out_dir)
    verdict = judge(run, targets)
    env = _environment()
    staging = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
        plots = write_plots(run, targets, staging / PLOTS_DIR)
        context = build_context(run, targets, verdict, plots)
        for name in REPORTS:
            text = env.get_template(f"{name}.j2").render(**context)
            (staging / name).write_text(text, encoding="utf-8")
        _move_into_place(staging, out_dir)
    except OSError as exc:
        raise OutputError(f"cannot write the report into {out_dir}: {exc.strerror or exc}",
                          hint="pass --out a writable folder with free space") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    paths = [out_dir / name for name in REPORTS] + [out_dir / PLOTS_DIR / p.name for p in plots]
    return Written(tuple(paths), tuple(context["summary"]))


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename each new file over the old one (atomic per file). Only files this report owns are
    touched: a plot that has no data this time is removed, anything else in plots/ is left.
    plots/ is written only through a descriptor of the real folder: a plots/ that is a symlink
    is refused (files.open_own_folder), never written through nor emptied."""
    plots = open_own_folder(out_dir / PLOTS_DIR)
    try:
        move_into(staging / PLOTS_DIR, plots, PLOT_NAMES)
    finally:
        os.close(plots)
    for name in REPORTS:
        os.replace(staging / name, out_dir / name)
