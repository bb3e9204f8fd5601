"""notebooks/study.ipynb executed headless (nbclient), from its parameters cell to its teardown:
on localhost (its "local" parameter) and against the fake Chameleon (chi-up of an edge device
whose sshd is this machine, bench.yml over SSH, the verdict, chi-down). Both leave nothing: the
fake cloud empty, no deployment files, no process of the run still going."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .notebook import execute, leftover_processes, outputs_text

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODEL = "models/food11_quantized_aggressive.onnx"


def run_dirs(results: Path) -> list[Path]:
    return [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()] if results.is_dir() else []


def test_local_parameter_runs_on_localhost(tmp_path):
    results = tmp_path / "results"
    nb, error = execute({"sites": "local", "profile": "smoke", "variants": "onnx-cpu",
                         "results_dir": str(results)})
    text = outputs_text(nb)
    assert error is None, text[-3000:]

    [run_dir] = run_dirs(results)
    assert run_dir.name.endswith("-local-smoke")
    record = json.loads((run_dir / "localhost" / "onnx-cpu.json").read_text())
    assert record["status"] == "ok"
    # The progress cell showed the record that landed, with its p50 as the record has it.
    assert f"last onnx-cpu p50 {record['latency_ms']['p50']:.3f} ms" in text
    assert "localhost: report, 1/1 variants" in text or "localhost: collect, 1/1 variants" in text
    assert f"Verdict for run <code>{run_dir.name}</code>" in text and "image/png" in str(nb)
    assert "nothing left" in text
    # Nothing of the run is left running, nor localhost's engine folder of it.
    assert not leftover_processes(str(tmp_path))
    assert not (REPO / ".servebench" / "node" / "runs" / run_dir.name).exists()


def edge_params(fake, tmp_path: Path, shared_data: Path, **extra) -> dict:
    """An edge device at the fake CHI@Edge, benchmarked natively with this venv's Python (the
    "Pi" is this machine behind the fake's sshd), its working folder under tmp_path."""
    return {
        "sites": ["edge"], "profile": "smoke", "variants": "onnx-cpu",
        "workdir": str(tmp_path / "work"), "results_dir": str(tmp_path / "results"),
        "chi_up_options": {"key": str(fake.ssh_key), "ssh_user": fake.ssh_user,
                           "wait_timeout": 20, "http_timeout": 3},
        "extra_vars": {"model": str(shared_data / MODEL), "tflite_model": "",
                       "benchmark_native_python": sys.executable,
                       "ansible_python_interpreter": sys.executable,
                       "onnx_runtime_flavours": [],
                       "benchmark_remote_dir": str(tmp_path / "node"),
                       "food11_dataset_dir": str(tmp_path / "food11")},
        **extra,
    }


@pytest.fixture
def fake_env(fake_chameleon, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("SERVEBENCH_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("OS_KEYPAIR_PRIVATE_KEY", raising=False)
    return fake_chameleon


def assert_nothing_left(fake, tmp_path: Path) -> None:
    assert not fake.leaked(), fake.live_resources()
    work = tmp_path / "work"
    assert not list(work.glob(".servebench/state-*")) and not list(work.glob("inventory/chi_*"))
    assert not leftover_processes(str(tmp_path))


def test_fake_chameleon_from_provisioning_to_teardown(fake_env, tmp_path, shared_data):
    fake = fake_env
    nb, error = execute(edge_params(fake, tmp_path, shared_data))
    text = outputs_text(nb)
    assert error is None, text[-3000:]

    [run_dir] = run_dirs(tmp_path / "results")
    assert run_dir.name.endswith("-chi-smoke")
    [host] = [p.name for p in run_dir.iterdir() if (p / "host_status.json").is_file()]
    record = json.loads((run_dir / host / "onnx-cpu.json").read_text())
    assert record["status"] == "ok" and record["host_kind"] == "edge"
    assert f"{host}: " in text and "1/1 variants" in text
    assert f"Verdict for run <code>{run_dir.name}</code>" in text and "Edge device" in text
    # chi-up's and chi-down's own lines, in the provisioning and teardown cells.
    assert any(r.method == "POST" and r.path.endswith("/leases") for r in fake.requests)
    assert "nothing left" in text
    assert_nothing_left(fake, tmp_path)


def test_a_failing_cell_tears_down_before_the_run_stops(fake_env, tmp_path, shared_data):
    fake = fake_env
    # The plan refuses the variant id: bench.yml fails after chi-up made the node.
    nb, error = execute(edge_params(fake, tmp_path, shared_data, variants="no-such-variant"))
    text = outputs_text(nb)
    assert error is not None and "RunFailed" in str(error), text[-3000:]
    assert "a cell failed (RunFailed): tearing down" in text
    assert any(r.method == "DELETE" for r in fake.requests)
    assert_nothing_left(fake, tmp_path)
