"""No credential reaches the disk through ansible-runner (issue 10, defect 3): the environment
ansible-playbook gets is filtered, facts are cached in memory only, and the gathered facts
leave out ``ansible_env``."""

from __future__ import annotations

from pathlib import Path

from servebench.runner import passed_env, run_playbook

from .conftest import LOCAL_INVENTORY

SECRETS = {
    "OS_PASSWORD": "hostile-password-5f1e",
    "OS_APPLICATION_CREDENTIAL_SECRET": "hostile-appcred-9c2d",
    "OS_TOKEN": "hostile-token-77ab",
    "AWS_SECRET_ACCESS_KEY": "hostile-aws-03be",
}


def test_only_the_needed_environment_is_passed():
    env = passed_env({"PATH": "/bin", "LC_ALL": "C", "ANSIBLE_FORKS": "3", **SECRETS})
    assert env == {"PATH": "/bin", "LC_ALL": "C", "ANSIBLE_FORKS": "3"}


def test_no_credential_in_any_file_under_results(tmp_path, monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "results"
    # collect alone: the plan, the host gate's fact gathering on localhost, the summary files.
    run = run_playbook("bench.yml", inventory=[LOCAL_INVENTORY], tags=["collect"],
                       extravars={"results_dir": str(results), "run_id": "secret-grep",
                                  "bench_fail_on_host_failure": False})
    assert run.artifact_dir.is_dir() and (run.artifact_dir / "command").is_file()
    assert run.task_results("Gate | gather facts"), "the facts were not gathered"
    assert not (run.artifact_dir / "fact_cache").exists()
    files = [p for p in results.rglob("*") if p.is_file()]
    assert len(files) > 5, files
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        for key, value in SECRETS.items():
            assert value not in text, f"{key} leaked into {path.relative_to(results)}"
        assert '"ansible_env"' not in text, f"ansible_env in {path.relative_to(results)}"


def test_a_run_id_that_climbs_out_is_refused_before_any_artifact(tmp_path):
    import pytest

    from servebench.errors import ConfigError

    with pytest.raises(ConfigError, match="run_id '../victim' is not a safe folder name"):
        run_playbook("bench.yml", inventory=[LOCAL_INVENTORY],
                     extravars={"results_dir": str(tmp_path / "results"), "run_id": "../victim"})
    assert list(tmp_path.iterdir()) == []
