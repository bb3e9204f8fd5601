"""Build the archive to upload to Trovi, Chameleon's artifact catalogue (``make artifact``).

What goes in: the files git tracks under the folders and files a user of the notebook needs
(the notebook, the playbooks and roles, the control and node code, the docs, trovi.json), never
anything untracked (results, venvs, chi-up's state and inventories are all untracked). What the
builder refuses, even when tracked: credentials (openrc files, clouds.yaml, anything holding a
private key or an ``OS_*`` secret, password or token assignment), SSH keys, chi-up's state files
and inventories, results folders, virtual environments, and a notebook saved with its outputs
(they can carry a run's hosts and addresses). A refusal is one line naming the file; nothing is
written then.

    python -m servebench.artifact [--out dist/servebench-trovi.tar.gz]
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import click

from .command import OneLineCommand
from .errors import ConfigError, OutputError, UsageError

REPO = Path(__file__).resolve().parents[2]
METADATA = "trovi.json"
NOTEBOOK = "notebooks/study.ipynb"
# What a user of the notebook needs; tests/ stays out (its fakes hold made-up secrets).
INCLUDED = ("README.md", "Makefile", "pyproject.toml", "ansible.cfg", "bench.yml", "targets.yml",
            METADATA, "benchmarks/", "callback_plugins/", "docs/", "inventory/", "notebooks/",
            "playbooks/", "roles/", "scripts/")
REQUIRED_METADATA = ("title", "short_description", "tags", "authors")
# (pattern on the path, why): refused wherever they are.
FORBIDDEN_PATHS = (
    ("*openrc*", "an OpenStack credentials file"),
    ("*clouds.yaml", "an OpenStack credentials file"),
    ("*app-cred*", "an application credential"),
    ("*id_rsa*", "an SSH key"), ("*id_ed25519*", "an SSH key"), ("*id_ecdsa*", "an SSH key"),
    ("*.pem", "a key or certificate"), ("*.key", "a key"),
    ("*.servebench/*", "chi-up's state, lock or known_hosts"),
    ("*state-*.json", "a chi-up state file"),
    ("inventory/chi_*", "an inventory chi-up wrote (it names your key and nodes)"),
    ("results/*", "a results folder"), ("*/results/*", "a results folder"),
    (".venv*", "a virtual environment"), ("*/.venv*", "a virtual environment"),
    ("*site-packages/*", "a virtual environment"),
)
SECRET_TEXT = (
    (re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    # An assignment of a secret to a literal (not a variable, not a placeholder).
    (re.compile(rb"\bOS_(?:PASSWORD|APPLICATION_CREDENTIAL_SECRET|TOKEN|CLIENT_SECRET)\s*[=:]\s*"
                rb"[\"']?(?![\"'$<{\s])[^\s\"']{6,}"), "an OpenStack secret"),
)


def tracked_files(repo: Path) -> list[str]:
    """The files git tracks (and has staged) under ``repo``, as relative POSIX paths."""
    try:
        done = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached"],
                              capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot list the files git tracks in {repo}: {exc}",
                          hint="build the artifact from a git checkout") from None
    if done.returncode != 0:
        raise ConfigError(f"{repo} is not a git checkout ({done.stderr.decode().strip()})",
                          hint="build the artifact from a git checkout")
    return [p for p in done.stdout.decode().split("\0") if p]


def selected(paths: list[str]) -> list[str]:
    return sorted(p for p in paths
                  if any(p == entry or (entry.endswith("/") and p.startswith(entry))
                         for entry in INCLUDED))


def refusal(path: str, data: bytes) -> str | None:
    """Why ``path`` (with content ``data``) may not go into the artifact, or None."""
    for pattern, why in FORBIDDEN_PATHS:
        if fnmatch.fnmatch(path, pattern):
            return why
    for pattern, why in SECRET_TEXT:
        if pattern.search(data):
            return f"it holds {why}"
    if path.endswith(".ipynb"):
        try:
            cells = json.loads(data).get("cells", [])
        except (ValueError, AttributeError):
            return "it is not a readable notebook"
        if any(c.get("outputs") or c.get("execution_count") for c in cells):
            return "it was saved with its outputs (clear them: a run's outputs name its hosts)"
    return None


def check_metadata(data: bytes) -> dict:
    try:
        meta = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{METADATA} is not valid JSON: {exc}") from None
    missing = [k for k in REQUIRED_METADATA if not meta.get(k)]
    if missing:
        raise UsageError(f"{METADATA} lacks {', '.join(missing)}",
                         hint="Trovi lists an artifact by its title, short description, tags and authors")
    return meta


def build(out: Path, repo: Path = REPO) -> list[str]:
    """Write the artifact to ``out`` (a .tar.gz, replaced atomically); return its members."""
    repo = Path(repo).resolve()
    members = selected(tracked_files(repo))
    for needed in (METADATA, NOTEBOOK):
        if needed not in members:
            raise UsageError(f"{needed} is not tracked by git in {repo}", hint=f"git add {needed}")
    contents = {}
    for path in members:
        try:
            data = (repo / path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        why = refusal(path, data)
        if why:
            raise UsageError(f"refusing to package {path}: {why}",
                             hint="remove it from the repository, or from git's index")
        contents[path] = data
    check_metadata(contents[METADATA])
    out = Path(out).resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=".artifact-", suffix=".tar.gz", dir=out.parent)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for path, data in contents.items():
                info = tarfile.TarInfo(f"servebench/{path}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                if os.access(repo / path, os.X_OK):
                    info.mode = 0o755
                tar.addfile(info, io.BytesIO(data))
        os.replace(staging, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}",
                          hint="pass --out a writable path") from None
    return list(contents)


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              default=REPO / "dist" / "servebench-trovi.tar.gz", show_default=True,
              help="The archive to write.")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=REPO,
              show_default=True, help="The git checkout to package.")
def main(out: Path, repo: Path) -> None:
    """Build the Trovi artifact: the notebook, its metadata and the code it runs; no secrets."""
    members = build(out, repo)
    click.echo(f"wrote {out} ({len(members)} files, {out.stat().st_size // 1024} KiB); upload it "
               "to Trovi, or package the checkout's folder from Chameleon's JupyterHub")


if __name__ == "__main__":
    sys.exit(main())
