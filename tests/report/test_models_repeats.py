"""The report of issue 12: records of several models grouped by model, repeats with their spread
and replicable flag, both single-sample FPS names, and INCONCLUSIVE verdicts with the reason."""

from __future__ import annotations

from servebench.report import formatting as fmt
from servebench.report.load import load_run

from .runs import record, write_run


def _two_models(tmp_path):
    recs = []
    for i, model in enumerate(("food11_quantized_dynamic", "food11_quantized_aggressive")):
        recs += [record("onnx-cpu", host_kind="cpu_server", model=model, p50_ms=2.0 + i,
                        seed=10 * i, scales=(1.0, 1.02, 0.99)),
                 record("openvino", host_kind="cpu_server", model=model, p50_ms=1.5 + i,
                        seed=10 * i + 1, scales=(1.0, 1.2, 1.01))]
    return write_run(tmp_path / "results", "two-models",
                     {"node": {"kind": "cpu_server", "records": recs}})


def test_records_of_two_models_load_under_their_keys(tmp_path):
    run = load_run(_two_models(tmp_path))
    (host,) = run.hosts
    assert [r.key for r in host.records] == [
        "food11_quantized_dynamic__onnx-cpu", "food11_quantized_dynamic__openvino",
        "food11_quantized_aggressive__onnx-cpu", "food11_quantized_aggressive__openvino"]
    assert all(r.ok for r in host.records) and host.notes == []
    assert run.models == ["food11_quantized_dynamic", "food11_quantized_aggressive"]
    assert run.label(host.records[2]) == "food11_quantized_aggressive / onnx-cpu"


def test_report_groups_by_model_and_shows_repeats(tmp_path, report):
    run = _two_models(tmp_path)
    result = report(run)
    assert result.exit_code == 0, result.output
    md = (run / "report.md").read_text()
    variants = md.split("## Variants")[1].split("## Skipped")[0]
    dyn, aggr = variants.split("### Model food11_quantized_dynamic")[1].split(
        "### Model food11_quantized_aggressive")
    assert [line.split(" | ")[1] for line in dyn.splitlines() if line.startswith("| node |")] \
        == ["onnx-cpu", "openvino"]
    assert len([line for line in aggr.splitlines() if line.startswith("| node |")]) == 2
    (cpu,) = [line for line in dyn.splitlines() if line.startswith("| node | onnx-cpu |")]
    assert "| 3, spread 1.030×, replicable |" in cpu
    (ov,) = [line for line in dyn.splitlines() if line.startswith("| node | openvino |")]
    assert "| 3, spread 1.200×, NOT replicable |" in ov
    # Both FPS definitions: 1000 / pooled p50, and trials / timed seconds.
    rec = load_run(run).hosts[0].records[0].data
    cells = cpu.split(" | ")
    assert cells[12:14] == [fmt.sig(1000 / rec["latency_ms"]["p50"]),
                            fmt.sig(len(rec["samples"]["latency_ns"])
                                    / (sum(rec["samples"]["latency_ns"]) / 1e9))]
    # 900 pooled samples: p99 valid (LoadGen wants 662), so no dagger and an interval.
    assert "†" not in cpu.split(" | ")[5] and cpu.split(" | ")[8] != "n/a"
    # The verdict names the model of each pair.
    assert "food11_quantized_aggressive / onnx-cpu" in md.split("## Variants")[0]


def test_report_says_why_a_verdict_is_inconclusive(tmp_path, report):
    recs = [record("wide", host_kind="cpu_server", p50_ms=2.95, batch_img_s=2000.0,
                   spread=0.2, n=100)]
    run = write_run(tmp_path / "results", "r", {"n1": {"kind": "cpu_server", "records": recs}})
    result = report(run)
    assert result.exit_code == 0, result.output
    assert "Server CPU: none met (1 variant(s) judged on cpu_server hardware); inconclusive: " \
           "wide on n1 (p50 latency: its 95 % interval straddles the threshold)" in result.stdout
    for name in ("report.md", "report.html"):
        text = (run / name).read_text()
        assert "INCONCLUSIVE" in text or "inconclusive" in text
        assert "straddles the threshold" in text
    md = (run / "report.md").read_text()
    (row,) = [line for line in md.splitlines() if line.startswith("| n1 (cpu_server) | wide |")]
    assert "**INCONCLUSIVE**" in row and "95 % CI [" in row
    # 100 samples: p95 and p99 not valid, marked.
    (var,) = [line for line in md.splitlines() if line.startswith("| n1 | wide |")]
    cells = var.split(" | ")
    assert cells[4].endswith("†") and cells[5].endswith("†") and not cells[3].endswith("†")


def test_a_key_the_suite_lists_without_a_record_is_shown_unreadable(tmp_path):
    run = _two_models(tmp_path)
    (run / "node" / "food11_quantized_aggressive__openvino.json").unlink()
    (host,) = load_run(run).hosts
    (missing,) = [r for r in host.records if not r.ok]
    assert (missing.key, missing.variant, missing.status) == (
        "food11_quantized_aggressive__openvino", "openvino", "unreadable")
    assert missing.reason == ("suite.json lists food11_quantized_aggressive__openvino but it "
                              "left no record")
    assert [r.key for r in host.records][-1] == missing.key      # in the engine's order
