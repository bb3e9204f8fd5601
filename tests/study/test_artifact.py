"""The Trovi artifact: built from this checkout and opened; and the builder's refusals, on a
scratch git repository holding what must never be uploaded."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from servebench.artifact import FORBIDDEN_PATHS, build, main
from servebench.errors import ExitCode, UsageError

REPO = Path(__file__).resolve().parents[2]
# Made up here; never a real key.
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def test_the_artifact_holds_the_notebook_and_metadata_and_nothing_secret(tmp_path):
    out = tmp_path / "servebench-trovi.tar.gz"
    build(out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        meta = json.load(tar.extractfile("servebench/trovi.json"))
        notebook = json.load(tar.extractfile("servebench/notebooks/study.ipynb"))
        texts = {n: tar.extractfile(n).read() for n in names if tar.getmember(n).isfile()}
    assert {"servebench/notebooks/study.ipynb", "servebench/trovi.json", "servebench/bench.yml",
            "servebench/scripts/servebench/study.py"} <= set(names)
    assert meta["title"] and meta["short_description"] and meta["tags"] and meta["authors"]
    assert any("parameters" in c["metadata"].get("tags", []) for c in notebook["cells"])
    for name in names:
        path = name.removeprefix("servebench/")
        assert not path.startswith(("tests/", "results/", ".servebench/", ".venv", ".git/")), name
        assert not any(fnmatch.fnmatch(path, pattern) for pattern, _ in FORBIDDEN_PATHS), name
    for name, data in texts.items():
        assert b"PRIVATE KEY-----" not in data or name.endswith("artifact.py"), name


def scratch_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    for rel in ("trovi.json", "notebooks/study.ipynb"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text((REPO / rel).read_text())
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    return repo


@pytest.mark.parametrize("files, why", [
    ({"inventory/chi_serve.yml": "all: {}\n"}, "an inventory chi-up wrote"),
    ({"scripts/.servebench/state-serve.json": "{}"}, "chi-up's state"),
    ({"docs/my-openrc.sh": "export OS_AUTH_URL=x\n"}, "credentials file"),
    ({"docs/notes.md": "export OS_APPLICATION_CREDENTIAL_SECRET=s3cr3tvalue\n"}, "OpenStack secret"),
    ({"scripts/deploy_key": FAKE_KEY}, "a private key"),
    ({"roles/x/files/id_ed25519": "x"}, "an SSH key"),
    ({"scripts/results/run/r.json": "{}"}, "a results folder"),
])
def test_the_builder_refuses_secrets_keys_state_and_results(tmp_path, files, why):
    repo = scratch_repo(tmp_path, files)
    out = tmp_path / "a.tar.gz"
    with pytest.raises(UsageError, match=why) as raised:
        build(out, repo)
    assert next(iter(files)) in str(raised.value) and raised.value.exit_code == ExitCode.USAGE
    assert not out.exists() and not list(tmp_path.glob(".artifact-*"))


def test_the_builder_refuses_a_notebook_saved_with_outputs(tmp_path):
    repo = scratch_repo(tmp_path, {})
    nb = json.loads((repo / "notebooks" / "study.ipynb").read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "127.0.0.1"}]
    (repo / "notebooks" / "study.ipynb").write_text(json.dumps(nb))
    with pytest.raises(UsageError, match="saved with its outputs"):
        build(tmp_path / "a.tar.gz", repo)


def test_placeholders_and_variables_are_not_secrets(tmp_path):
    repo = scratch_repo(tmp_path, {
        "docs/how.md": "export OS_PASSWORD=$SECRET\nOS_APPLICATION_CREDENTIAL_SECRET: <yours>\n"})
    build(tmp_path / "a.tar.gz", repo)


def test_command_line_is_one_line_and_exit_2_on_refusal(tmp_path, capsys):
    repo = scratch_repo(tmp_path, {"inventory/chi_x.yml": ""})
    with pytest.raises(SystemExit) as done:
        main(["--out", str(tmp_path / "a.tar.gz"), "--repo", str(repo)])
    assert done.value.code == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to package inventory/chi_x.yml") and "\n" not in err
