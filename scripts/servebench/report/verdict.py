"""Judge every successful (host, variant) against the targets that apply to its host.

A target applies to results of the host kinds it lists; a result of any other kind (`local`, the
embedded default, or an unknown kind) is judged against every target, marked indicative because
it is not the target hardware; so is a result measured under emulation (qemu), whatever its kind.
The kind is the record's own (``bench-run --host-kind``), else its
host's: an A100 node is a GPU server for its CUDA runs and a CPU server for its CPU runs.

A criterion is PASS or FAIL only when the record's 95 % interval of the judged figure lies
wholly on one side of the threshold; INCONCLUSIVE (with the reason) when the interval straddles
it, when there is no interval, or when the percentile is not valid (fewer samples than MLPerf
LoadGen's minimum query count for it). Figures without an interval (batch throughput, size, or
a record without ``ci95``) are judged on their value. A judgement is FAIL if any criterion
fails, else INCONCLUSIVE if any is, else n/a if any value is missing, else PASS.

The load mode's knee (``knee_rps_at_least: {p99_ms: B, rps: R}``, judge_knee) is PASS when the
record's knee was searched at bound B, is >= R, and its point is stable with a LoadGen-valid
p99 (662 queries or more); FAIL when a stable, LoadGen-valid open-loop point offered at most R
req/s has p99 over B (whatever bound the search used: a queue's p99 only grows with the rate);
INCONCLUSIVE otherwise, with the reason (no knee, an unstable or under-counted knee, a knee
searched at another bound, or a knee that passes while a slower point fails); n/a when the load
mode did not run for the variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

from . import serving
from .load import Host, Record, Run
from .targets import TARGET_HOST_KINDS, Criterion, Target, Targets

PASS, FAIL, NA, INCONCLUSIVE = "pass", "fail", "n/a", "inconclusive"
# A judgement's outcome: the first of these that any of its criteria has.
_PRECEDENCE = (FAIL, INCONCLUSIVE, NA)


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    threshold: float
    value: float | None
    outcome: str                  # pass | fail | inconclusive | n/a
    why: str | None = None        # for n/a and inconclusive: why
    ci: tuple[float, float] | None = None  # the 95 % interval the outcome rests on


@dataclass(frozen=True)
class Judgement:
    host: Host
    record: Record
    target: Target
    indicative: bool              # host is not the target hardware (local)
    results: tuple[CriterionResult, ...]

    @property
    def outcome(self) -> str:
        outcomes = {r.outcome for r in self.results}
        return next((o for o in _PRECEDENCE if o in outcomes), PASS)

    @property
    def p50(self) -> float:
        stats = self.record.data.get("latency_ms") or {}
        p50 = stats.get("p50")
        return float("inf") if p50 is None else p50


@dataclass(frozen=True)
class TargetSummary:
    target: Target
    met: tuple[Judgement, ...]            # on the target hardware, best (lowest p50) first
    inconclusive: tuple[Judgement, ...]   # on the target hardware, neither met nor failed
    indicative_met: tuple[Judgement, ...]  # on hosts that are not the target hardware
    judged: int                           # (host, variant) pairs judged on the target hardware


@dataclass(frozen=True)
class Verdict:
    judgements: tuple[Judgement, ...]
    summaries: tuple[TargetSummary, ...]

    def for_pair(self, host: Host, record: Record) -> dict[str, Judgement]:
        """target id -> judgement for one (host, variant); targets not applied are absent."""
        return {j.target.id: j for j in self.judgements if j.host is host and j.record is record}


def result_kind(host: Host, record: Record) -> str:
    return str(record.data.get("host_kind") or host.kind)


def is_target_hardware(kind: str, target: Target) -> bool:
    return kind in target.judged_on


def kind_applies(kind: str, target: Target) -> bool:
    # Results of a target kind are judged only on their own targets; anything else on all of them.
    return is_target_hardware(kind, target) or kind not in TARGET_HOST_KINDS


def applies(host: Host, target: Target) -> bool:
    """Whether any result of ``host`` is judged against ``target``."""
    kinds = {result_kind(host, r) for r in host.records} or {host.kind}
    return any(kind_applies(k, target) for k in kinds)


def emulated(host: Host, record: Record) -> bool:
    """Measured under an emulator (an arm64 container on x86 through qemu): whatever the host's
    kind, its timings are the emulator's, so it is never the target hardware."""
    env = record.data.get("environment") or host.environment or {}
    return bool(env.get("emulated"))


def judge_knee(criterion: Criterion, rps: float, record: Record) -> CriterionResult:
    """The knee at the criterion's bound against ``rps`` (the module docstring's rule)."""
    bound = float(criterion.bound_ms or 0)
    knee, why = serving.knee(record.data)
    if knee is None:
        outcome = NA if record.data.get("load") is None else INCONCLUSIVE
        return CriterionResult(criterion, rps, None, outcome, why)
    load, _ = serving.group(record.data)
    over = [p for p in serving.points(load or {})
            if p.stable and p.valid and p.p99 > bound and p.offered <= rps]
    same = knee.bound_ms is not None and math.isclose(knee.bound_ms, bound, rel_tol=1e-9)
    value = knee.rps if same else None
    passes = same and knee.rps is not None and knee.rps >= rps and knee.valid and knee.stable
    if over:
        shown = (f"p99 {over[0].p99:.3g} ms > {bound:g} ms at {over[0].offered:.4g} req/s "
                 f"(a stable point, {over[0].count} queries)")
        if passes:
            return CriterionResult(criterion, rps, value, INCONCLUSIVE,
                                   f"the points disagree: the knee passes, yet {shown}")
        return CriterionResult(criterion, rps, value, FAIL, shown)
    if passes:
        return CriterionResult(criterion, rps, value, PASS)
    none_over = (f"no stable point with LoadGen's 662 queries shows p99 over {bound:g} ms at or "
                 f"below {rps:g} req/s")
    if not same:
        searched = "no bound" if knee.bound_ms is None else f"p99 ≤ {knee.bound_ms:g} ms"
        why = (f"the knee was searched at {searched}, not the target's {bound:g} ms "
               f"(bench-run --load-bound-ms {bound:g}), and {none_over}")
    elif knee.rps is None:
        why = f"no knee ({knee.found}), and {none_over}"
    elif not knee.stable:
        why = "the knee's point is not a stable point of the curve"
    elif not knee.valid:
        why = (f"the knee's p99 rests on {knee.queries} queries, fewer than MLPerf LoadGen's "
               "662")
    else:
        why = f"the knee is under {rps:g} req/s, but {none_over}"
    return CriterionResult(criterion, rps, value, INCONCLUSIVE, why)


def judge_criterion(criterion: Criterion, threshold: float, record: Record) -> CriterionResult:
    if criterion.bound_ms is not None:
        return judge_knee(criterion, threshold, record)
    value = criterion.read(record.data)
    if value is None:
        return CriterionResult(criterion, threshold, None, NA,
                               f"the record has no {criterion.metric}")
    value = float(value)
    plain = PASS if criterion.holds(value, threshold) else FAIL
    u = criterion.uncertainty(record.data)
    if u is None:
        return CriterionResult(criterion, threshold, value, plain)
    samples = f"{u.count} samples" if u.count is not None else "its samples"
    if u.valid is False:
        return CriterionResult(criterion, threshold, value, INCONCLUSIVE,
                               f"{u.figure} not valid: {samples}, fewer than MLPerf LoadGen's "
                               f"minimum query count for it", u.ci)
    if u.ci is None:
        return CriterionResult(criterion, threshold, value, INCONCLUSIVE,
                               f"no 95 % interval of the {u.figure} from {samples}")
    ends = {criterion.holds(end, threshold) for end in u.ci}
    if len(ends) == 2:
        return CriterionResult(criterion, threshold, value, INCONCLUSIVE,
                               "its 95 % interval straddles the threshold", u.ci)
    return CriterionResult(criterion, threshold, value, PASS if ends == {True} else FAIL,
                           ci=u.ci)


def judge(run: Run, targets: Targets) -> Verdict:
    judgements = []
    for host, record in run.records():
        if host.status != "ok" or not record.ok:
            continue
        kind = result_kind(host, record)
        for target in targets.targets:
            if kind_applies(kind, target):
                results = tuple(judge_criterion(c, t, record) for c, t in target.criteria)
                indicative = not is_target_hardware(kind, target) or emulated(host, record)
                judgements.append(Judgement(host, record, target, indicative, results))
    summaries = []
    for target in targets.targets:
        mine = [j for j in judgements if j.target is target]
        by_p50 = sorted((j for j in mine if j.outcome == PASS), key=lambda j: j.p50)
        summaries.append(TargetSummary(
            target=target,
            met=tuple(j for j in by_p50 if not j.indicative),
            inconclusive=tuple(j for j in mine if j.outcome == INCONCLUSIVE and not j.indicative),
            indicative_met=tuple(j for j in by_p50 if j.indicative),
            judged=sum(1 for j in mine if not j.indicative),
        ))
    return Verdict(tuple(judgements), tuple(summaries))
