"""servebench.study, the Python API, without a playbook run: chi-up and chi-down through it
against the fake Chameleon, the commands' own exceptions and exit codes, the report objects."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from servebench.errors import ExitCode, UsageError
from servebench.provision.cli import chi_down, chi_up
from servebench.study import (Deployment, Report, RunFailed, RunOutcome, Study, _interrupt_children,
                              _invoke)


@pytest.fixture
def fake(fake_chameleon, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVEBENCH_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("OS_KEYPAIR_PRIVATE_KEY", raising=False)
    return fake_chameleon


def up_options(fake) -> dict:
    return {"key": str(fake.ssh_key), "ssh_user": fake.ssh_user, "wait_timeout": 20,
            "http_timeout": 3}


def test_provision_and_teardown_are_chi_up_and_chi_down(fake, tmp_path):
    study = Study(workdir=tmp_path)
    deployment = study.provision("edge", name="nb-edge", **up_options(fake))
    assert deployment.inventory == tmp_path / "inventory" / "chi_nb-edge.yml"
    assert deployment.inventory.is_file() and deployment.state_file.is_file()
    assert study.inventory()[1] == deployment.inventory
    assert fake.live_resources()["containers"] and "nb-edge" in deployment._repr_markdown_()

    study.teardown()
    assert not fake.leaked() and not study.deployments
    assert not deployment.inventory.exists() and not deployment.state_file.exists()


@pytest.mark.parametrize("args, options", [
    (["--site", "moon"], {"site": "moon"}),
    (["--site", "edge", "--duration", "forever"], {"site": "edge", "duration": "forever"}),
])
def test_errors_are_the_commands_exceptions_with_their_exit_codes(fake, tmp_path, monkeypatch,
                                                                   args, options):
    monkeypatch.chdir(tmp_path)
    cli = CliRunner().invoke(chi_up, [*args, "--key", str(fake.ssh_key)])
    site = options.pop("site")
    with pytest.raises(UsageError) as raised:
        Study(workdir=tmp_path).provision(site, key=str(fake.ssh_key), **options)
    assert raised.value.exit_code == cli.exit_code == ExitCode.USAGE
    # The same message the command prints, as the exception's text.
    assert raised.value.format() in cli.output, cli.output
    assert not fake.leaked()


def test_chi_down_errors_and_a_teardown_by_name(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = CliRunner().invoke(chi_down, ["--name", "gone"])
    with pytest.raises(UsageError) as raised:
        _invoke(chi_down, ["--name", "gone"])
    assert raised.value.exit_code == cli.exit_code == ExitCode.USAGE
    assert raised.value.format() in cli.output
    # The study tears down by name and site: a deployment already gone is nothing left.
    study = Study(workdir=tmp_path, deployments=[Deployment("edge", "gone", tmp_path)])
    study.teardown()
    assert not study.deployments


def test_a_failed_run_raises_with_the_playbooks_exit_status(tmp_path):
    from servebench.progress import Progress
    from servebench.runner import PlaybookRun

    failed = RunOutcome(PlaybookRun(rc=2, status="failed", artifact_dir=tmp_path / "runner",
                                    run_id="r1"), Progress(), tmp_path)
    with pytest.raises(RunFailed) as raised:
        failed.check()
    assert raised.value.exit_code == 2 and raised.value.run is failed
    assert "runner/stdout" in raised.value.format()
    ok = RunOutcome(PlaybookRun(rc=0, status="successful", artifact_dir=tmp_path, run_id="r1"),
                    Progress(), tmp_path)
    assert ok.check() is ok


def test_report_shows_the_verdict_and_embeds_the_plots(tmp_path):
    plot = _png(tmp_path)
    report = Report("r1", ("Server CPU: PASS (onnx-cpu)", "Edge device: not measured"),
                    (tmp_path / "report.md", plot))
    assert report.plots == [plot]
    assert "- Server CPU: PASS (onnx-cpu)" in report._repr_markdown_()
    html = report._repr_html_()
    assert "<li>Edge device: not measured</li>" in html and "data:image/png;base64," in html


def _png(folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = folder / "latency.png"
    plt.figure(figsize=(1, 1))
    plt.savefig(path)
    plt.close("all")
    return path


def test_an_interrupt_stops_only_this_processs_ansible_playbook(tmp_path):
    script = tmp_path / "ansible-playbook"
    script.write_text("import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
                      "    raise SystemExit(130)\n")
    ours = subprocess.Popen([sys.executable, str(script)])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        _interrupt_children("ansible-playbook")
        assert ours.wait(timeout=10) == 130
        assert other.poll() is None
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()
