"""Records are checked where they are read, and the regression gate fails closed (issue 17, items
5 and 6): a NaN, infinite or negative figure makes a record unreadable, with the reason in the
report, never judged ("met by ... p50 nan ms") or compared; `--fail-above` over a compare that
judged nothing, or a row with no finite ratio, is an error (exit 2), never "no significant
slowdown"."""

from __future__ import annotations

import json

import pytest

from servebench.errors import ExitCode

from .runs import local_run, record, write_run

BAD = "onnx-optimized"
SCALES = (1.0, 1.012, 0.991)


def _spoil(run, variant, edit) -> None:
    """Rewrite one record as text, as a broken or hostile writer would leave it."""
    path = run / "localhost" / f"{variant}.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))            # Python writes NaN and Infinity as such


SPOILS = {
    "nan_p50": (lambda d: d["latency_ms"].update(p50=float("nan")),
                "NaN is not a number"),
    "infinite_cold_start": (lambda d: d.update(cold_start_ms=float("inf")),
                            "Infinity is not a number"),
    "negative_size": (lambda d: d.update(model_size_bytes=-5),
                      "model_size_bytes is -5, not a figure"),
    "negative_accuracy": (lambda d: d["accuracy"].update(correct=-61),
                          "accuracy.correct is -61, not a figure"),
}


@pytest.mark.parametrize("case", list(SPOILS))
def test_a_non_finite_or_negative_figure_is_unreadable_with_its_reason(tmp_path, report, case):
    run = local_run(tmp_path / "results")
    edit, reason = SPOILS[case]
    _spoil(run, BAD, edit)
    result = report(run)
    assert result.exit_code == 0, result.output
    verdict = result.stdout.split("verdict for run", 1)[1]
    assert BAD not in verdict and "nan" not in verdict and "-0.0" not in verdict, verdict
    md = (run / "report.md").read_text()
    problems = md.split("## Skipped and failed variants", 1)[1].split("## Failed hosts")[0]
    (row,) = [line for line in problems.splitlines() if f"| {BAD} |" in line]
    assert "| unreadable |" in row and reason in row, row
    assert "not judged or compared" in row or "JSON has no NaN" in row, row


def _two_runs(tmp_path, *, model_b="random-init", scales=SCALES):
    runs = []
    for run_id, model in (("A", "random-init"), ("B", model_b)):
        recs = [record(v, host="node", host_kind="cpu_server", p50_ms=p50, seed=i,
                       scales=scales, model=model)
                for i, (v, p50) in enumerate((("onnx-cpu", 3.2), (BAD, 1.7)))]
        runs.append(write_run(tmp_path, run_id, {"node": {"kind": "cpu_server",
                                                          "records": recs}}))
    return runs


def _edit(run, variant, edit):
    path = run / "node" / f"{variant}.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("case", ["another_model", "zero_medians", "nan_median"])
def test_the_regression_gate_fails_closed(tmp_path, report, case):
    a, b = _two_runs(tmp_path, model_b="other-model" if case == "another_model" else "random-init")
    if case == "zero_medians":
        _edit(b, BAD, lambda d: d["repeats"].update(p50_ms=[0.0, 0.0, 0.0]))
    elif case == "nan_median":
        _edit(b, BAD, lambda d: d["repeats"].update(p50_ms=[float("nan")] * 3))
    plain = report("--compare", a, b)
    assert plain.exit_code == 0, plain.output          # without a gate: a table, as before
    gated = report("--compare", a, b, "--fail-above", "5%")
    assert gated.exit_code == ExitCode.USAGE == 2, gated.output
    assert "gate: no significant slowdown" not in gated.stdout
    (line,) = gated.stderr.splitlines()
    if case == "another_model":
        assert line.startswith("error: gate: nothing to gate: no model x host x variant"), line
    else:
        assert line.startswith("error: gate: 1 row(s) of both runs could not be judged"), line
        assert f"random-init / {BAD} @ node" in line
        assert ("repeat median of 0 ms" if case == "zero_medians" else "NaN is not a number") \
            in line, line
