"""bench-report never writes or deletes through a symlink (issue 17, item 2): a run folder's
`plots` or `compare` that links elsewhere is refused with one line and exit 2, and the files
where it points are neither overwritten nor removed."""

from __future__ import annotations

import pytest

from .conftest import snapshot
from .runs import local_run, record, write_run


def _victim(tmp_path):
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    for name in ("latency.png", "size_vs_latency.png", "throughput.png", "compare.md",
                 "compare.png"):
        (victim / name).write_text(f"someone else's {name}\n")
    return victim


def _one_line(result):
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    return result.stderr.strip()


@pytest.mark.parametrize("case", ["plottable", "nothing_to_plot"])
def test_a_plots_folder_that_is_a_symlink_is_refused(tmp_path, report, case):
    if case == "plottable":
        run = local_run(tmp_path / "results")
    else:  # no ok record: the old code removed every plot where the link pointed
        recs = [record("onnx-cuda", status="skipped", reason="no CUDA GPU on this host")]
        run = write_run(tmp_path / "results", "r",
                        {"localhost": {"kind": "local", "records": recs}})
    victim = _victim(tmp_path)
    (run / "plots").symlink_to(victim)
    before, victim_before = snapshot(run), snapshot(victim)
    line = _one_line(report(run))
    assert f"error: {run / 'plots'} is a symlink" in line and "refused" in line, line
    assert snapshot(victim) == victim_before
    assert snapshot(run) == before and (run / "plots").is_symlink()


def test_a_compare_folder_that_is_a_symlink_is_refused(tmp_path, report):
    a = local_run(tmp_path / "results", "A")
    b = local_run(tmp_path / "results", "B")
    victim = _victim(tmp_path)
    (b / "compare").symlink_to(victim)
    victim_before = snapshot(victim)
    line = _one_line(report("--compare", a, b))
    assert f"error: {b / 'compare'} is a symlink" in line and "refused" in line, line
    assert snapshot(victim) == victim_before
    assert not list(b.glob(".compare*")) and not list(victim.glob(".compare*"))
