"""`bench-report --compare RUN_A RUN_B`: is B slower or faster than A, per model x host x variant?

The figure compared is the single-sample median latency, as the ratio B / A. Its 95 % interval
comes from the repeats, because fresh processes on one machine differ by more than one loop's
own noise (issue 12 saw one p50 at 5.1 and 10.4 ms ten minutes apart):

* both runs with >= 2 repeats: Welch's t interval on the difference of the mean log repeat
  medians (``repeats.p50_ms``), exponentiated. Its error rate is the nominal 5 % when the log
  repeat medians are roughly normal (a process-level factor times a loop median); Welch's
  degrees of freedom keep it honest with unequal spreads. An exact permutation test was not
  used: with 3 repeats a side its smallest two-sided p-value is 0.1, it could never call 5 %.
* one run with a single repeat: the same t interval, taking that run's between-process spread to
  be the other run's (degrees of freedom of the other run alone).
* both with a single repeat: a percentile bootstrap of the ratio of medians over the samples
  (``samples.latency_ns``, split by ``samples.repeat_counts``). It covers only the noise within
  one process, so its call is shown but never gates (see ``Ratio.gated``).

The call is "slower" when the whole interval is above 1, "faster" when below, else "no
significant change". Each row is a separate 5 % test: over k rows, up to 1 - 0.95^k of
same-distribution comparisons show at least one false call; the gate (``--fail-above``) also
asks the estimate to exceed the threshold, which makes a false alarm rarer still.

Where records carry the load mode, each row also shows A, B and B / A of the knee and the
closed-loop ceiling (columns.compare_cells): one search each, no interval, so never gated.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError, RegressionError, UsageError
from ..files import move_into, open_own_folder
from . import formatting as fmt
from .load import Host, Record, Run
from .columns import compare_cells
from .plots import compare_plot
from .student_t import t_quantile
from .render import flatten, md_cell

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 12
SLOWER, FASTER, SAME = "slower", "faster", "no significant change"
# Environment keys that differ between any two runs and explain nothing.
_ENV_IGNORED = {"time"}


# ---- the ratio of medians ---------------------------------------------------------------------

@dataclass(frozen=True)
class Ratio:
    estimate: float                       # B / A
    ci: tuple[float, float]
    method: str
    gated: bool                           # the interval covers between-process variation

    @property
    def call(self) -> str:
        return SLOWER if self.ci[0] > 1 else FASTER if self.ci[1] < 1 else SAME


def repeat_medians(rec: dict) -> list[float]:
    rep = rec.get("repeats")
    meds = rep.get("p50_ms") if isinstance(rep, dict) else None
    if meds:
        return [float(m) for m in meds]
    return [float(rec["latency_ms"]["p50"])]


def repeat_samples(rec: dict) -> list[np.ndarray]:
    """The single-sample latencies (ms) of each repeat, split by ``samples.repeat_counts``."""
    samples = rec.get("samples") or {}
    pooled = np.asarray(samples.get("latency_ns") or [], dtype=np.float64) / 1e6
    counts = (samples.get("repeat_counts") or {}).get("latency") or [len(pooled)]
    if sum(counts) != len(pooled):
        raise ValueError(f"repeat_counts {counts} do not add up to {len(pooled)} samples")
    return np.split(pooled, np.cumsum(counts)[:-1])


def _lower_median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """The nearest-rank (lower) median, the report's p50."""
    n = x.shape[axis]
    return np.partition(x, (n + 1) // 2 - 1, axis=axis).take((n + 1) // 2 - 1, axis=axis)


def _bootstrap(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    ratios = []
    chunk = max(1, 4_000_000 // max(len(a), len(b)))
    for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
        k = min(chunk, BOOTSTRAP_RESAMPLES - start)
        ma = _lower_median(a[rng.integers(0, len(a), (k, len(a)))])
        mb = _lower_median(b[rng.integers(0, len(b), (k, len(b)))])
        ratios.append(mb / ma)
    r = np.concatenate(ratios)
    alpha = 1 - CONFIDENCE
    return float(np.quantile(r, alpha / 2)), float(np.quantile(r, 1 - alpha / 2))


def ratio_of_medians(a: dict, b: dict, rng: np.random.Generator | None = None) -> Ratio:
    """B / A of the median latency of two records, with its 95 % interval (module docstring);
    ValueError when a median is not a positive finite number, or the ratio is not finite."""
    ratio = _ratio(a, b, rng)
    if not all(math.isfinite(x) and x > 0 for x in (ratio.estimate, *ratio.ci)):
        raise ValueError(f"B/A {ratio.estimate:g} [{ratio.ci[0]:g}, {ratio.ci[1]:g}] is not a "
                         "finite positive ratio")
    return ratio


def _ratio(a: dict, b: dict, rng: np.random.Generator | None) -> Ratio:
    ma, mb = repeat_medians(a), repeat_medians(b)
    for side, medians in (("A", ma), ("B", mb)):
        if not all(math.isfinite(m) and m > 0 for m in medians):
            raise ValueError(f"{side} has a repeat median of {min(medians):g} ms: no ratio to it")
    if len(ma) == 1 and len(mb) == 1:
        sa, sb = np.concatenate(repeat_samples(a)), np.concatenate(repeat_samples(b))
        if len(sa) == 0 or len(sb) == 0:
            raise ValueError("a record has no samples")
        ci = _bootstrap(sa, sb, rng or np.random.default_rng(BOOTSTRAP_SEED))
        estimate = float(_lower_median(sb) / _lower_median(sa))
        return Ratio(estimate, ci, f"bootstrap over {len(sa)} / {len(sb)} samples, one repeat "
                     "each: within-process noise only, not gated", gated=False)
    la, lb = np.log(ma), np.log(mb)
    diff = float(lb.mean() - la.mean())
    va = float(la.var(ddof=1)) / len(la) if len(la) > 1 else None
    vb = float(lb.var(ddof=1)) / len(lb) if len(lb) > 1 else None
    if va is None or vb is None:
        # One repeat on one side: borrow the other side's spread for it.
        known = lb if va is None else la
        s2 = float(known.var(ddof=1))
        se, df = math.sqrt(s2 / len(la) + s2 / len(lb)), len(known) - 1
        method = (f"t on log repeat medians, {len(la)} vs {len(lb)} repeats (the single "
                  "repeat's spread taken from the other run)")
    else:
        se = math.sqrt(va + vb)
        denom = va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1)
        df = (va + vb) ** 2 / denom if denom > 0 else float("inf")
        method = f"Welch t on log repeat medians, {len(la)} vs {len(lb)} repeats"
    half = 0.0 if se == 0 else se * t_quantile(1 - (1 - CONFIDENCE) / 2, df)
    return Ratio(math.exp(diff), (math.exp(diff - half), math.exp(diff + half)), method, True)


# ---- matching two runs -------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    model: str
    variant: str
    host_a: str
    host_b: str
    a: Record | None                      # the record in each run (None: not in that run)
    b: Record | None
    ratio: Ratio | None
    note: str | None                      # why there is no ratio
    # Both runs have the row, yet it has no ratio where one was due: the gate cannot pass it.
    unjudged: bool = False

    @property
    def label(self) -> str:
        host = self.host_a if self.host_a == self.host_b else f"{self.host_a} -> {self.host_b}"
        return f"{self.model} / {self.variant} @ {host}"


@dataclass(frozen=True)
class Comparison:
    run_a: Run
    run_b: Run
    rows: tuple[Row, ...]
    host_pairs: tuple[tuple[Host, Host], ...]
    unmatched: tuple[str, ...]            # hosts of one run only
    # (which hosts, (key, value in A, value in B) of each environment entry that differs)
    env_diffs: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]


def _host_pairs(a: Run, b: Run) -> tuple[list[tuple[Host, Host]], list[str]]:
    """Hosts of the same name; two one-host runs are paired whatever their names (two nodes)."""
    hosts_a = [h for h in a.hosts if h.status == "ok"]
    hosts_b = [h for h in b.hosts if h.status == "ok"]
    names_b = {h.name: h for h in hosts_b}
    pairs = [(h, names_b[h.name]) for h in hosts_a if h.name in names_b]
    if not pairs and len(hosts_a) == 1 and len(hosts_b) == 1:
        pairs = [(hosts_a[0], hosts_b[0])]
    paired = {h.name for p in pairs for h in p}
    unmatched = [f"{h.name} (only in {run.run_id})" for run, hosts in ((a, hosts_a), (b, hosts_b))
                 for h in hosts if h.name not in paired]
    return pairs, unmatched


def _by_key(host: Host) -> dict[tuple[str, str], Record]:
    # An unreadable record stays where its model is known (from its file, or the host's one
    # model): its row says why it is not compared, and the gate does not pass it.
    models = {r.model for r in host.records if r.model}
    only = models.pop() if len(models) == 1 else None
    return {(r.model or only or "?", r.variant): r for r in host.records
            if r.status != "unreadable" or r.model or only}


def _row(key: tuple[str, str], ha: Host, hb: Host, ra: Record | None, rb: Record | None) -> Row:
    note, ratio = None, None
    if ra is None or rb is None:
        note = f"only in run {'B' if ra is None else 'A'}"
    elif not (ra.ok and rb.ok):
        why = "; ".join(f"{side}: {r.reason}" for side, r in (("A", ra), ("B", rb))
                        if r.status == "unreadable")
        note = f"not comparable: A {ra.status}, B {rb.status}" + (f" ({why})" if why else "")
    else:
        try:
            ratio = ratio_of_medians(ra.data, rb.data)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            note = f"not comparable: {exc}"
    # A baseline that ran (or a record that cannot be read) with no ratio: unjudged, never
    # passed. Only a variant that did not run in A, and now runs in B, owes no ratio.
    unjudged = (ra is not None and rb is not None and ratio is None
                and (ra.ok or "unreadable" in (ra.status, rb.status)))
    return Row(key[0], key[1], ha.name, hb.name, ra, rb, ratio, note, unjudged)


def environment_differences(ha: Host, hb: Host) -> tuple[tuple[str, str, str], ...]:
    """(key, value in A, value in B) of every environment entry that differs."""
    ea = dict(flatten(ha.environment))
    eb = dict(flatten(hb.environment))
    keys = [k for k in dict.fromkeys([*ea, *eb]) if k.split(".")[0] not in _ENV_IGNORED]
    return tuple((k, ea.get(k, "(absent)"), eb.get(k, "(absent)")) for k in keys
                 if ea.get(k) != eb.get(k))


def compare_runs(a: Run, b: Run) -> Comparison:
    pairs, unmatched = _host_pairs(a, b)
    rows = []
    for ha, hb in pairs:
        ka, kb = _by_key(ha), _by_key(hb)
        for key in dict.fromkeys([*ka, *kb]):
            rows.append(_row(key, ha, hb, ka.get(key), kb.get(key)))
    diffs = tuple((f"{ha.name} (A) / {hb.name} (B)", environment_differences(ha, hb))
                  for ha, hb in pairs)
    return Comparison(a, b, tuple(rows), tuple(pairs), tuple(unmatched), diffs)


# ---- the gate ----------------------------------------------------------------------------------

def parse_threshold(text: str) -> float:
    """'5%' or '5' -> 0.05."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%?\s*", text or "")
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--fail-above {text!r}: expected a positive percentage such as 5%")
    return float(match.group(1)) / 100


def regressions(comparison: Comparison, threshold: float) -> list[Row]:
    """Rows whose slowdown is significant (interval above 1), gated (from repeats) and whose
    estimate exceeds 1 + threshold."""
    return [r for r in comparison.rows
            if r.ratio and r.ratio.gated and r.ratio.call == SLOWER
            and r.ratio.estimate > 1 + threshold]


# ---- output ------------------------------------------------------------------------------------

def _ratio_text(r: Row) -> tuple[str, str, str]:
    if r.ratio is None:
        return fmt.NA, fmt.NA, r.note or ""
    ci = f"[{r.ratio.ci[0]:.3f}, {r.ratio.ci[1]:.3f}]"
    return f"{r.ratio.estimate:.3f}", ci, r.ratio.call


def _records(c: Comparison) -> list[Record]:
    return [rec for r in c.rows for rec in (r.a, r.b) if rec is not None]


def text_lines(c: Comparison) -> list[str]:
    lines, records = [], _records(c)
    for r in c.rows:
        ratio, ci, call = _ratio_text(r)
        figures = "".join(f"{head} {text}{unit}, "
                          for head, text, unit in compare_cells(r.a, r.b, records))
        lines.append(f"{r.label}: {figures}B/A {ratio} {ci}: {call}")
    return lines


def markdown(c: Comparison, threshold: float | None, plot: str | None) -> str:
    out = [f"# servebench compare: {md_cell(c.run_b.run_id)} (B) against "
           f"{md_cell(c.run_a.run_id)} (A)", "",
           "B / A of the single-sample median latency (above 1: B is slower) with its 95 % "
           "interval; the method says where the interval comes from (docs/RESULTS.md, "
           "\"Comparing two runs\"). Each row is its own 5 % test. The load mode's knee and "
           "ceiling, where shown, are one search each: their B/A has no interval and is never "
           "gated.", ""]
    if threshold is not None:
        out += [f"Gate: fail when a gated row is significantly slower by more than "
                f"{threshold * 100:g} %.", ""]
    records = _records(c)
    heads = ["model", "variant", "host"] + [
        f"{head}{unit}" for head, _, unit in compare_cells(None, None, records)] + [
        "B/A", "95 % CI", "call", "method"]
    out += ["| " + " | ".join(md_cell(h) for h in heads) + " |", "|---" * len(heads) + "|"]
    for r in c.rows:
        ratio, ci, call = _ratio_text(r)
        host = r.host_a if r.host_a == r.host_b else f"{r.host_a} -> {r.host_b}"
        cells = [r.model, r.variant, host,
                 *(text for _, text, _ in compare_cells(r.a, r.b, records)), ratio, ci, call,
                 r.ratio.method if r.ratio else ""]
        out.append("| " + " | ".join(md_cell(x) for x in cells) + " |")
    out.append("")
    for u in c.unmatched:
        out.append(f"- host {md_cell(u)}: no counterpart, not compared")
    if plot:
        out += ["", f"![B / A per variant]({plot})", ""]
    out += ["## Environment differences", ""]
    for title, diffs in c.env_diffs:
        out += [f"### {md_cell(title)}", ""]
        if not diffs:
            out += ["No difference in the recorded environment.", ""]
            continue
        out += ["| key | A | B |", "|---|---|---|"]
        out += [f"| {md_cell(k)} | {md_cell(va)} | {md_cell(vb)} |" for k, va, vb in diffs]
        out.append("")
    return "\n".join(out) + "\n"


def write_comparison(c: Comparison, out_dir: Path, threshold: float | None) -> list[Path]:
    """compare.md and compare.png into ``out_dir``, each renamed into place when whole (a
    compare.png with nothing to draw is removed). ``out_dir`` itself is never a symlink: it is
    written only through a descriptor of the real folder (files.open_own_folder)."""
    out_dir = Path(out_dir)
    names = ("compare.md", "compare.png")
    staging = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        folder = open_own_folder(out_dir)
        try:
            staging = Path(tempfile.mkdtemp(prefix=".compare-", dir=out_dir))
            drawn = compare_plot(c, threshold, staging / names[1])
            (staging / names[0]).write_text(markdown(c, threshold, names[1] if drawn else None),
                                            encoding="utf-8")
            move_into(staging, folder, names)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            os.close(folder)
    except OSError as exc:
        raise OutputError(f"cannot write the comparison into {out_dir}: {exc.strerror or exc}",
                          hint="pass --out a writable folder") from None
    return [out_dir / names[0]] + ([out_dir / names[1]] if drawn else [])


def gate(c: Comparison, threshold: float) -> None:
    """Raise RegressionError (exit 6) naming every gated significant slowdown over threshold.
    The gate fails closed: when it judged nothing, or a row both runs have could not be judged
    (no finite ratio, an unreadable record, a baseline that ran but B did not), it raises
    UsageError (exit 2: the two runs cannot be gated as they are), never a pass."""
    bad = regressions(c, threshold)
    if bad:
        listed = "; ".join(f"{r.label} x{r.ratio.estimate:.3f} [{r.ratio.ci[0]:.3f}, "
                           f"{r.ratio.ci[1]:.3f}]" for r in bad)
        raise RegressionError(f"{len(bad)} significant slowdown(s) above "
                              f"{threshold * 100:g} %: {listed}")
    unjudged = [r for r in c.rows if r.unjudged]
    if unjudged:
        listed = "; ".join(f"{r.label}: {r.note}" for r in unjudged[:5])
        more = f"; and {len(unjudged) - 5} more" if len(unjudged) > 5 else ""
        raise UsageError(f"gate: {len(unjudged)} row(s) of both runs could not be judged, so the "
                         f"gate cannot pass: {listed[:1500]}{more}",
                         hint="rerun the failed variants, or compare runs that both measured them")
    if not any(r.ratio and r.ratio.gated for r in c.rows):
        compared = sum(1 for r in c.rows if r.ratio)
        why = (f"{compared} row(s) compared, all from one repeat on both sides (never gated)"
               if compared else f"no model x host x variant of {c.run_a.run_id} (A) is in "
               f"{c.run_b.run_id} (B) with a result")
        raise UsageError(f"gate: nothing to gate: {why}",
                         hint="compare two runs of the same model, variants and hosts, with "
                              "--repeats 2 or more in at least one")


def describe(c: Comparison) -> dict[str, Any]:
    """Counts for the command's last line."""
    calls = [r.ratio.call for r in c.rows if r.ratio]
    return {SLOWER: calls.count(SLOWER), FASTER: calls.count(FASTER), SAME: calls.count(SAME),
            "not compared": sum(1 for r in c.rows if r.ratio is None)}
