"""A record measured under emulation (an arm64 container on x86 through qemu) never passes as
the device's figure: it is judged indicative only, kept out of "met by", and the report says why."""

from __future__ import annotations

from servebench.report.load import load_run
from servebench.report.render import build_context
from servebench.report.targets import load_targets
from servebench.report.verdict import PASS, judge

from .runs import record, write_run


def _run(tmp_path, emulated: bool):
    rec = record("onnx-int8-static-conservative", host="edge-1", host_kind="edge", p50_ms=1.0,
                 size_bytes=2_000_000)
    rec["environment"].update(machine="aarch64", cpu_model="Cortex-A76", emulated=emulated)
    return load_run(write_run(tmp_path, f"r{int(emulated)}",
                              {"edge-1": {"kind": "edge", "records": [rec]}}))


def test_emulated_edge_result_is_indicative_and_not_met(tmp_path):
    targets = load_targets()
    for emulated in (False, True):
        run = _run(tmp_path, emulated)
        verdict = judge(run, targets)
        (j,) = [j for j in verdict.judgements if j.target.id == "edge"]
        (summary,) = [s for s in verdict.summaries if s.target.id == "edge"]
        assert j.outcome == PASS and j.indicative is emulated
        assert bool(summary.met) is not emulated and bool(summary.indicative_met) is emulated
        context = build_context(run, targets, verdict, [])
        assert context["emulated_hosts"] == (["edge-1"] if emulated else [])
        (line,) = [s for s in context["summary"] if s.startswith(summary.target.title)]
        assert ("indicative only" in line) is emulated and ("met by" in line)
