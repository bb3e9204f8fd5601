"""Cost per 1,000 inferences, energy per inference and the chart of p99 against both (issue 21):
run.json's site and node_type, the report's columns and plots/tradeoff.png's data."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jinja2
import pytest
import yaml

from servebench import cost, schema
from servebench.collect import collect
from servebench.report import columns
from servebench.report.load import load_run
from servebench.report.plots import tradeoff_plot
from servebench.report.targets import load_targets
from servebench.report.tradeoff import COST, ENERGY, tradeoff

from .runs import energy_figure, load_group, options_run, record, write_run

REPO = Path(__file__).resolve().parents[2]
# A rate table of the test's own: the figures below do not move when rates.yml is edited.
RATES = """version: 1
money_per_su: null
rates:
  - {site: CHI@TACC, node_type: compute_liqid, su_per_node_hour: 4, su_per_node_hour_max: 8,
     source: test}
  - {site: CHI@UC, node_type: compute_gigaio, su_per_node_hour: 6, source: test}
  - {site: CHI@Edge, node_type: raspberrypi5, su_per_node_hour: null,
     reason: no rate published for edge devices}
"""
SU_PER_HOUR = {"compute_liqid": 4, "compute_gigaio": 6}


@pytest.fixture(autouse=True)
def rates(tmp_path, monkeypatch):
    path = tmp_path / "rates.yml"
    path.write_text(RATES)
    monkeypatch.setenv(cost.RATES_ENV, str(path))
    return path


def _su(throughput: float, node_type: str) -> float:
    """1,000 inferences hold the node 1000 / throughput seconds, charged by the hour."""
    return 1000 / throughput / 3600 * SU_PER_HOUR[node_type]


def _rows(md: str) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """The variant table of report.md: its headers, and the cells by (host, variant)."""
    section = md.split("## Variants", 1)[1].split("## Skipped", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    split = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    heads = split[0]
    return heads, {(c[0], c[1]): dict(zip(heads, c)) for c in split[1:]}


# -- run.json: site and node_type -----------------------------------------------------------

def test_the_collect_play_passes_each_hosts_site_and_node_type():
    """The collect play's dict, rendered by Jinja as Ansible does, for a chi-up host (both
    hostvars) and localhost (neither: null)."""
    play = yaml.safe_load((REPO / "playbooks" / "collect.yml").read_text())
    task = next(t for p in play for t in p.get("tasks", [])
                if t["name"].startswith("Collect | what Ansible knows of each host"))
    expression = task["ansible.builtin.set_fact"]["bench_collect_hosts"]
    hostvars = {"node-1": {"host_kind": "gpu_server", "site": "tacc",
                           "node_type": "compute_liqid"},
                "localhost": {"host_kind": "local"}}
    render = jinja2.Environment().from_string(expression)
    got = [ast.literal_eval(render.render(hostvars=hostvars, item=name))[0]
           for name in hostvars]
    assert [(h["host"], h["site"], h["node_type"]) for h in got] == [
        ("node-1", "tacc", "compute_liqid"), ("localhost", None, None)]


def test_run_json_keeps_site_and_node_type_and_null_where_there_is_none(tmp_path):
    run = tmp_path / "r"
    for name in ("n1", "local", "odd"):
        (run / name).mkdir(parents=True)
    hosts = [{"host": "n1", "kind": "cpu_server", "failure": {}, "site": "tacc",
              "node_type": "compute_liqid"},
             {"host": "local", "kind": "local", "failure": {}, "site": None, "node_type": None},
             {"host": "odd", "kind": "edge", "failure": {}, "site": 7, "node_type": [" "]}]
    doc = collect(run, {"run_id": "r", "profile": "quick", "variants": [], "model": "",
                        "tflite_model": "", "started_at": "2026-11-23T19:15:00Z",
                        "repo": str(tmp_path), "hosts": hosts})
    assert [(h["site"], h["node_type"]) for h in doc["hosts"]] == [
        ("tacc", "compute_liqid"), (None, None), (None, None)]
    written = json.loads((run / "run.json").read_text())
    assert written["hosts"] == doc["hosts"] and schema.problem("run", written) is None
    # The host's own status file stays as it was: pricing is the run's.
    assert "node_type" not in json.loads((run / "n1" / "host_status.json").read_text())


def test_a_run_json_without_site_and_node_type_is_still_read(tmp_path):
    """Collected before issue 21: no keys, same schema_version; the report prices nothing."""
    run = write_run(tmp_path, "old", {"n1": {"kind": "cpu_server", "site": "tacc",
                                             "node_type": "compute_liqid",
                                             "records": [record("onnx-cpu", host="n1",
                                                                host_kind="cpu_server")]}})
    doc = json.loads((run / "run.json").read_text())
    for entry in doc["hosts"]:
        entry.pop("site"), entry.pop("node_type")
    (run / "run.json").write_text(json.dumps(doc))
    host = load_run(run).hosts[0]
    assert (host.status, host.site, host.node_type) == ("ok", None, None)
    fig = columns.BY_KEY["cost_batch"].cell(host, host.records[0])
    assert fig == "n/a (no node type and site recorded for n1)"


# -- the report's columns ---------------------------------------------------------------------

def test_cost_and_energy_columns_of_the_three_options(tmp_path, report):
    run = options_run(tmp_path)
    assert report(run).exit_code == 0
    heads, rows = _rows((run / "report.md").read_text())
    assert "SU per 1000 (knee)" not in heads       # no record has a knee: no column
    data = {(h.name, r.variant): r.data for h, r in load_run(run).records()}

    cpu = rows[("node-cpu", "onnx-cpu")]
    batch = _su(data[("node-cpu", "onnx-cpu")]["batch_throughput"], "compute_liqid")
    single = _su(data[("node-cpu", "onnx-cpu")]["single_fps_from_p50"], "compute_liqid")
    # compute_liqid nodes differ (one or two A100s): the dearest's figure beside.
    assert cpu["SU per 1000 (batch)"] == (f"{columns.fmt.sig(batch)} "
                                          f"(up to {columns.fmt.sig(2 * batch)})")
    assert cpu["SU per 1000 (1000/p50)"].startswith(columns.fmt.sig(single) + " (up to ")
    assert cpu["J per inference"] == "0.0500 (rapl)"
    assert rows[("node-cpu", "openvino")]["J per inference"] == "n/a (window 0.2 s is shorter " \
        "than 10 sensor periods)"

    gpu = rows[("node-gpu", "onnx-cuda")]
    assert gpu["SU per 1000 (batch)"] == columns.fmt.sig(
        _su(data[("node-gpu", "onnx-cuda")]["batch_throughput"], "compute_gigaio"))
    assert gpu["J per inference"] == "0.0200 (rapl+nvml)"
    assert rows[("node-gpu", "onnx-tensorrt")]["J per inference"] == "n/a (not measured)"

    pi = rows[("pi5", "tflite")]
    assert pi["SU per 1000 (batch)"] == "n/a (no measured batch throughput)"
    assert pi["SU per 1000 (1000/p50)"] == "n/a (no published rate for raspberrypi5 at CHI@Edge)"
    assert pi["J per inference"] == "0.300 (pi5-pmic)"

    local = rows[("localhost", "onnx-cpu")]
    assert local["SU per 1000 (batch)"] == local["SU per 1000 (1000/p50)"] == \
        "n/a (not a testbed node)"
    assert local["J per inference"] == "n/a (no energy source on this node)"


def test_the_knee_column_appears_when_a_record_carries_a_knee(tmp_path, report):
    load = load_group()
    recs = [record("onnx-cpu", host="n1", host_kind="cpu_server", load=load),
            record("openvino", host="n1", host_kind="cpu_server", seed=3)]
    run = write_run(tmp_path, "knee", {"n1": {"kind": "cpu_server", "site": "uc",
                                              "node_type": "compute_gigaio", "records": recs}})
    assert report(run).exit_code == 0
    heads, rows = _rows((run / "report.md").read_text())
    assert heads.index("SU per 1000 (knee)") == heads.index("SU per 1000 (1000/p50)") + 1
    assert rows[("n1", "onnx-cpu")]["SU per 1000 (knee)"] == columns.fmt.sig(
        _su(load["knee"]["knee_rps"], "compute_gigaio"))
    assert rows[("n1", "openvino")]["SU per 1000 (knee)"] == \
        "n/a (no load-mode knee in the record)"


@pytest.mark.parametrize("energy, shown", [
    (energy_figure(0.125, "nvml"), "0.125 (nvml)"),
    ({**energy_figure(0.125, "nvml"), "joules_per_inference": -0.125}, "n/a (joules_per_inference "
     "is -0.125, not a figure)"),
    ({**energy_figure(0.125, "nvml"), "valid": False, "reason": None},
     "n/a (the meter marked the figure not valid)"),
    ("0.125", "n/a (not measured)"),
])
def test_only_a_valid_energy_figure_is_shown_as_a_number(energy, shown):
    data = record("onnx-cpu")
    data["energy"] = energy
    rec = columns.Record("onnx-cpu", "ok", None, Path("x"), data)
    assert columns.BY_KEY["energy"].cell(None, rec) == shown
    assert (columns.figure("energy", rec) is None) == shown.startswith("n/a")


# -- the chart ---------------------------------------------------------------------------------

def test_the_chart_draws_what_has_figures_and_lists_the_rest(tmp_path):
    run = load_run(options_run(tmp_path))
    data = tradeoff(run)
    records = {(h.name, r.variant): r.data for h, r in run.records()}

    def p99(host, variant):
        return records[(host, variant)]["latency_ms"]["p99"]

    assert [(p.label, p.x, p.y) for p in data.points[ENERGY]] == [
        ("cpu_server / onnx-cpu", 0.05, p99("node-cpu", "onnx-cpu")),
        ("gpu_server / onnx-cuda", 0.02, p99("node-gpu", "onnx-cuda")),
        # A GPU node's CPU variant is labelled by the kind it was measured as.
        ("cpu_server / onnx-int8-dynamic", 0.09, p99("node-gpu", "onnx-int8-dynamic")),
        ("edge / tflite", 0.3, p99("pi5", "tflite"))]
    assert [(p.label, round(p.x, 12)) for p in data.points[COST]] == [
        (f"{kind} / {variant}",
         round(_su(records[(host, variant)]["single_fps_from_p50"], node), 12))
        for host, kind, variant, node in (
            ("node-cpu", "cpu_server", "onnx-cpu", "compute_liqid"),
            ("node-cpu", "cpu_server", "openvino", "compute_liqid"),
            ("node-gpu", "gpu_server", "onnx-cuda", "compute_gigaio"),
            ("node-gpu", "gpu_server", "onnx-tensorrt", "compute_gigaio"),
            ("node-gpu", "cpu_server", "onnx-int8-dynamic", "compute_gigaio"))]
    assert [(m.axis, m.label, m.reason) for m in data.missing] == [
        (ENERGY, "local / onnx-cpu", "no energy source on this node (rapl: no powercap)"),
        (COST, "local / onnx-cpu", "not a testbed node: localhost has no node type or site "
                                   "to price"),
        (ENERGY, "cpu_server / openvino", "window 0.2 s is shorter than 10 sensor periods "
                                          "(0.5 s): run the loop at least that long"),
        (ENERGY, "gpu_server / onnx-tensorrt", "not measured: the record has no energy figure"),
        (COST, "edge / tflite", "no published rate for raspberrypi5 at CHI@Edge: no rate "
                                "published for edge devices")]


def test_the_chart_file_holds_those_points_and_the_report_lists_the_missing(tmp_path, report):
    folder = options_run(tmp_path)
    run = load_run(folder)
    plot = tradeoff_plot(run, load_targets(None), tmp_path / "tradeoff.png")
    assert (tmp_path / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = tradeoff(run)
    # What the axes hold, read back from the figure: every point, nothing else.
    drawn = {(axis.split(" ")[0], label, round(x, 9), round(y, 6))
             for axis, label, x, y in plot.drawn}
    expected = {("energy" if axis == ENERGY else "SU", p.label, round(p.x, 9), round(p.y, 6))
                for axis in data.points for p in data.points[axis]}
    assert drawn == expected and len(plot.drawn) == 9
    assert plot.missing == tuple(m.text() for m in data.missing) and len(plot.missing) == 5

    assert report(folder).exit_code == 0
    md = (folder / "report.md").read_text()
    listed = md.split("### Latency, energy and cost", 1)[1].split("##", 1)[0]
    assert "- edge / tflite: not on the cost chart: no published rate for raspberrypi5 at " \
           "CHI@Edge: no rate published for edge devices" in listed
    assert "- local / onnx-cpu: not on the cost chart: not a testbed node" in listed
    assert listed.count("\n- ") == 5
    assert "<li>gpu_server / onnx-tensorrt: not on the energy chart: not measured" in \
        (folder / "report.html").read_text()


def test_a_failed_host_is_listed_missing_not_drawn(tmp_path):
    run = write_run(tmp_path, "f", {
        "n1": {"kind": "cpu_server", "site": "tacc", "node_type": "compute_liqid",
               "records": [record("onnx-cpu", host="n1", host_kind="cpu_server", n=200,
                                  energy=energy_figure(0.05))]},
        "gpu": {"kind": "gpu_server", "status": "failed", "reason": "no A100 on the node"}})
    data = tradeoff(load_run(run))
    # 200 samples: a p99 under LoadGen's minimum count, drawn and marked as the table marks it.
    assert [p.label for p in data.points[ENERGY]] == ["cpu_server / onnx-cpu †"]
    assert [m.text() for m in data.missing] == [
        "gpu_server gpu: not on either chart: host failed: no A100 on the node"]


def test_a_broken_rate_table_is_one_line_and_no_report(tmp_path, report, rates):
    run = options_run(tmp_path)
    rates.write_text(RATES.replace("su_per_node_hour: 6", "su_per_node_hour: -6"))
    result = report(run)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {rates}: rates[1].su_per_node_hour: expected a positive number, got -6"]
    assert not (run / "report.md").exists() and not (run / "plots").exists()
