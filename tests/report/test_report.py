"""`bench-report` end to end through its real entry point: files written, what they say, plots
that are real images, escaping of hostile text, and nothing written on error."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape
from PIL import Image

from .conftest import snapshot
from .runs import HOSTILE, cluster_run, local_run, record, write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("latency.png", "throughput.png", "size_vs_latency.png", "tradeoff.png")


@pytest.fixture
def local(tmp_path, report):
    run = local_run(tmp_path / "results")
    (tmp_path / "results" / "latest").symlink_to(run.name)
    result = report(tmp_path / "results" / "latest")
    assert result.exit_code == 0, result.output
    return run, result


@pytest.fixture
def cluster(tmp_path, report):
    run = cluster_run(tmp_path / "results")
    result = report(run)
    assert result.exit_code == 0, result.output
    return run, result


def test_local_run_writes_reports_and_plots_and_says_so(local):
    run, result = local
    latest = run.parent / "latest"
    written = [line.removeprefix("wrote ") for line in result.stdout.splitlines()
               if line.startswith("wrote ")]
    assert written == [str(latest / "report.md"), str(latest / "report.html")] + [
        str(latest / "plots" / name) for name in PLOTS]
    assert all((run / name).is_file() for name in ("report.md", "report.html"))
    assert not list(run.glob(".report-*"))            # the staging folder is gone
    summary = result.stdout.split("verdict for run 20261123T191500Z-local-quick:\n")[1]
    assert summary.splitlines()[0].startswith("  Server CPU: not measured")
    assert "met by onnx-int8-static-aggressive on localhost" in summary


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_local_report_warns_and_marks_local_indicative(local, name):
    run, _ = local
    text = run.joinpath(name).read_text()
    assert "SYNTHETIC" in text and "RANDOM WEIGHTS" in text
    assert text.count("accuracy is meaningless") == 2
    assert "localhost is not the target hardware: verdicts there are indicative only" in text
    # Skipped variants are listed with their reasons, though never plotted or judged.
    assert re.search(r"onnx-cuda.{0,40}skipped.{0,60}no CUDA GPU on this host", text, re.S)
    assert "20261123T191500Z-local-quick" in text and "0123abcd" in text


def test_markdown_tables_have_one_row_per_variant(local):
    run, _ = local
    md = run.joinpath("report.md").read_text()
    variants = md.split("## Variants")[1].split("## Skipped")[0]
    rows = [line for line in variants.splitlines() if line.startswith("| localhost |")]
    assert len(rows) == 11                            # 9 ok + 2 skipped
    assert {line.count(" | ") for line in rows} == {22}   # 23 columns, none broken
    # Every number comes from the records: the pinned p50 and throughput of one variant.
    (aggr,) = [r for r in rows if "| onnx-int8-static-aggressive |" in r]
    assert "| 1.90 |" in aggr and "| 1,120 |" in aggr and "| 2.42 MB |" in aggr
    assert "61/110 (55.5 %)" in aggr and "neural-compressor 3.7.1 static QOperator" in aggr


def test_plots_are_real_pngs(local):
    run, _ = local
    for name in PLOTS:
        path = run / "plots" / name
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 15_000, name               # a drawn chart, not an empty canvas
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            width, height = img.size
            # Not blank: a chart has many colours (bars, lines, anti-aliased text).
            colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
        assert width >= 1000 and height >= 400, (name, img.size)
        assert colours is None or len(colours) > 50, name


def test_reports_reference_plots_relatively(local):
    run, _ = local
    html = run.joinpath("report.html").read_text()
    assert re.findall(r'<img src="([^"]+)"', html) == [f"plots/{n}" for n in PLOTS]
    md = run.joinpath("report.md").read_text()
    assert re.findall(r"!\[[^]]*\]\(([^)]+)\)", md) == [f"plots/{n}" for n in PLOTS]


def test_cluster_report_shows_failed_host_error_variant_and_verdict(cluster):
    run, result = cluster
    assert "Server GPU: not measured: no gpu_server host with results in this run " \
           "(node-gpu failed: nvidia-smi found no GPU" in result.stdout
    assert "Edge device: met by tflite on pi5" in result.stdout
    md = run.joinpath("report.md").read_text()
    failed = md.split("## Failed hosts")[1].split("## Plots")[0]
    assert "| node-gpu | gpu_server | nvidia-smi found no GPU: the lease's node has no A100 |" \
        in failed
    assert "WARNING" not in md                          # trained model, real data
    assert "indicative" not in md.split("## Variants")[0].split("### Which")[0]
    # An edge host is judged on the edge target only; the server columns say so.
    (pi_tflite,) = [line for line in md.splitlines() if line.startswith("| pi5 (edge) | tflite |")]
    cells = [c.strip() for c in pi_tflite.strip("|").split(" | ")]
    assert cells[2:4] == ["not judged (edge host)", "not judged (edge host)"]
    assert cells[4].startswith("**PASS**")


def test_hostile_reason_is_escaped(cluster):
    run, _ = cluster
    html = run.joinpath("report.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html
    assert str(escape(HOSTILE)) in html                # shown, as text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    md = run.joinpath("report.md").read_text()
    problems = md.split("## Skipped and failed variants")[1].split("## Failed hosts")[0]
    (row,) = [line for line in problems.splitlines()
              if line.startswith("| pi5 | onnx-cpu | error |")]
    assert "\\<script>" in row and "\\<img" in row and "\\|" in row
    assert "<script>" not in md.replace("\\<script>", "")
    # The pipe in the reason did not add a column.
    assert row.replace("\\|", "").count(" | ") == 3


def test_out_elsewhere_leaves_the_run_untouched(tmp_path, report):
    run = cluster_run(tmp_path / "results")
    before = snapshot(run)
    out = tmp_path / "site" / "report"
    result = report(run, "--out", out)
    assert result.exit_code == 0, result.output
    assert snapshot(run) == before
    assert sorted(p.name for p in out.iterdir()) == ["plots", "report.html", "report.md"]


def test_rerender_replaces_own_plots_and_keeps_foreign_files(tmp_path, report):
    run = local_run(tmp_path / "results")
    assert report(run).exit_code == 0
    (run / "plots" / "notes.txt").write_text("mine")
    # Now every variant failed: no plot has data; the old ones must not linger.
    for path in (run / "localhost").glob("*.json"):
        if path.name not in ("host_status.json", "suite.json"):
            path.write_text('{"schema_version": 1, "variant": "x", "status": "error", '
                            '"reason": "all broke"}')
    result = report(run)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["notes.txt"]
    assert "No variant completed: nothing to plot." in (run / "report.md").read_text()


def test_error_keeps_the_previous_report(tmp_path, report):
    run = local_run(tmp_path / "results")
    assert report(run).exit_code == 0
    before = snapshot(run)
    bad = tmp_path / "targets.yml"
    bad.write_text("targets: [")
    result = report(run, "--targets", bad)
    assert result.exit_code == 2
    assert snapshot(run) == before


def test_unwritable_out_is_one_line_and_writes_nothing(tmp_path, report):
    run = local_run(tmp_path / "results")
    before = snapshot(run)
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder")
    result = report(run, "--out", blocker / "report")
    assert result.exit_code == 2  # a usage/config error (OutputError), not 1, "a bug"
    assert result.stderr.startswith(f"error: cannot write the report into {blocker / 'report'}")
    assert len(result.stderr.splitlines()) == 1
    assert snapshot(run) == before and blocker.read_text() == "a file, not a folder"


@pytest.mark.parametrize("make", ["missing", "not-a-run"])
def test_bad_run_dir_is_exit_2_one_line(tmp_path, report, make):
    target = tmp_path / "somewhere"
    if make == "not-a-run":
        (target / "stray").mkdir(parents=True)
        (target / "stray" / "x.json").write_text("{}")
    before = snapshot(tmp_path)
    result = report(target)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert "results/latest" in result.stderr
    assert snapshot(tmp_path) == before


def test_host_failed_everywhere_still_renders(tmp_path, report):
    run = write_run(tmp_path, "r", {"n1": {"kind": "cpu_server", "status": "failed",
                                           "reason": "unreachable: ssh timed out",
                                           "records": [record("onnx-cpu", status="skipped",
                                                              reason="never started")]}})
    result = report(run)
    assert result.exit_code == 0, result.output
    md = (run / "report.md").read_text()
    assert "| n1 | cpu_server | unreachable: ssh timed out |" in md
    assert "No variant completed on any host: nothing to judge." in md
    assert not (run / "plots").exists() or not any((run / "plots").iterdir())


def test_help_explains(report):
    result = report("--help")
    assert result.exit_code == 0
    assert "results/latest" in result.output and "--targets" in result.output
