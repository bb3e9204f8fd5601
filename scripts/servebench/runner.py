"""Run a playbook through ansible-runner and keep its artifacts beside the results of the run.

Where Python drives Ansible (the tests, any command of ours that runs a playbook) it goes through
here rather than scraping a shell: ansible-runner gives the exit status, a status word
(successful / failed / timeout / canceled), the per-host stats and every event, and writes them
to disk (rc, status, stdout, job_events/), so a failed run can be read after the fact.

For ``bench.yml`` the run id is fixed here (UTC time, scope, profile, by the rules playbooks/plan.yml
holds and this module reads from it) and passed as ``-e run_id=...``, so the artifacts land in
``results/<run-id>/runner/`` beside that run's records (docs/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from .errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# What ansible-playbook may see of the caller's environment: the rest (OS_* credentials above
# all) stays out of it, out of its tasks' environment and out of runner/command on disk.
PASSED_ENV = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "SSH_AUTH_SOCK", "VIRTUAL_ENV", "PYTHONPATH", "http_proxy", "https_proxy", "no_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
    "PIP_CONFIG_FILE", "FOOD11_DATA_DIR",
})
PASSED_ENV_PREFIXES = ("LC_", "ANSIBLE_", "SERVEBENCH_")
ARTIFACT_IDENT = "runner"


@lru_cache(maxsize=4)
def plan_rules(repo: Path = REPO) -> dict[str, Any]:
    """The plan's own variables (playbooks/plan.yml): the one place of the run-id rule
    (bench_safe_name, bench_run_stamp) and of the groups chi-up fills (bench_testbed_groups)."""
    plays = yaml.safe_load((repo / "playbooks" / "plan.yml").read_text(encoding="utf-8"))
    return plays[0]["vars"]


@dataclass
class PlaybookRun:
    """What one ansible-playbook run left: exit status, status word, stats, where the artifacts are."""

    rc: int
    status: str
    artifact_dir: Path
    run_id: str | None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    @property
    def run_dir(self) -> Path | None:
        """results/<run-id>/ of a bench.yml run."""
        return self.artifact_dir.parent if self.run_id else None

    def events(self) -> Iterator[dict[str, Any]]:
        """Every job event as written to job_events/, in order."""
        folder = self.artifact_dir / "job_events"
        files = sorted(folder.glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
        for path in files:
            yield json.loads(path.read_text(encoding="utf-8"))

    def task_results(self, task: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
        """event_data of the finished task results (ok, changed, failed, skipped, unreachable),
        optionally only those of one task name and one host; ``event`` says which."""
        wanted = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable",
                  "runner_item_on_ok", "runner_item_on_failed", "runner_item_on_skipped"}
        found = []
        for event in self.events():
            data = event.get("event_data", {})
            if event.get("event") not in wanted:
                continue
            if task is not None and data.get("task") != task:
                continue
            if host is not None and data.get("host") != host:
                continue
            found.append({**data, "event": event["event"]})
        return found

    def changed(self, host: str | None = None) -> int:
        """Tasks reported changed, on one host or all."""
        per_host = self.stats.get("changed", {})
        return per_host.get(host, 0) if host else sum(per_host.values())


def new_run_id(profile: str, scope: str, now: datetime | None = None) -> str:
    """``20261123T191500Z-local-quick``: the id playbooks/plan.yml gives a new run."""
    stamp = (now or datetime.now(timezone.utc)).strftime(plan_rules()["bench_run_stamp"])
    return f"{stamp}-{scope}-{profile}"


def inventory_scope(inventory: Sequence[Path], repo: Path = REPO) -> str:
    """``chi`` when the inventory holds testbed hosts (chi-up's groups), else ``local``.

    Asked of ``ansible-inventory`` in a child process: importing Ansible's inventory classes here
    would patch ``sys.intern`` in the caller's process, which breaks torch.compile there.
    """
    tool = Path(sys.executable).with_name("ansible-inventory")
    cmd = [str(tool) if tool.is_file() else "ansible-inventory", "--list"]
    for path in inventory:
        cmd += ["-i", str(path)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(repo / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                              check=False)
        listing = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot list the inventory: {exc}") from None
    if listing is None:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ConfigError(f"cannot read the inventory {', '.join(map(str, inventory))}: {last}")

    def has_hosts(group: str, seen: frozenset = frozenset()) -> bool:
        entry = listing.get(group) or {}
        return bool(entry.get("hosts")) or any(
            has_hosts(child, seen | {group}) for child in entry.get("children", [])
            if child not in seen)

    return "chi" if any(has_hosts(g) for g in plan_rules(repo)["bench_testbed_groups"]) else "local"


def passed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` a playbook run gets (PASSED_ENV and its prefixes)."""
    return {k: v for k, v in environ.items()
            if k in PASSED_ENV or k.startswith(PASSED_ENV_PREFIXES)}


def _free_ident(artifact_root: Path) -> str:
    """``runner``, or ``runner-2``, ``-3``... when a stage of the same run is run again."""
    ident, n = ARTIFACT_IDENT, 1
    while (artifact_root / ident).exists():
        n += 1
        ident = f"{ARTIFACT_IDENT}-{n}"
    return ident


def run_playbook(
    playbook: str | Path = "bench.yml",
    *,
    extravars: Mapping[str, Any] | None = None,
    inventory: Sequence[str | Path] | None = None,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    check: bool = False,
    diff: bool = False,
    artifact_dir: str | Path | None = None,
    repo: Path = REPO,
    envvars: Mapping[str, str] | None = None,
    quiet: bool = True,
    timeout: int | None = None,
) -> PlaybookRun:
    """Run ``playbook`` (relative to ``repo``) and return its outcome.

    ``bench.yml`` without ``run_id`` in ``extravars`` gets a new run id and its artifacts go to
    ``<results_dir>/<run-id>/runner/``; any other playbook needs ``artifact_dir``.
    """
    import ansible_runner.interface

    repo = Path(repo).resolve()
    playbook_path = (repo / playbook).resolve()
    if not playbook_path.is_file():
        raise ConfigError(f"playbook {playbook_path} not found",
                          hint="run from a servebench checkout")
    inventory_paths = [Path(p).resolve() for p in (inventory or [repo / "inventory"])]
    extra = dict(extravars or {})

    run_id: str | None = None
    if artifact_dir is None:
        if playbook_path.name != "bench.yml":
            raise ConfigError(f"artifact_dir is needed to keep the artifacts of {playbook_path.name}")
        run_id = str(extra.get("run_id") or new_run_id(str(extra.get("profile", "full")),
                                                        inventory_scope(inventory_paths, repo)))
        if not re.match(plan_rules(repo)["bench_safe_name"], run_id):
            raise ConfigError(f"run_id {run_id!r} is not a safe folder name",
                              hint="use letters, digits, '.', '_' and '-' (no '/', no '..')")
        extra["run_id"] = run_id
        artifact_root = Path(extra.get("results_dir") or repo / "results") / run_id
    else:
        artifact_root = Path(artifact_dir)
        run_id = extra.get("run_id")
    artifact_root = artifact_root.resolve()
    artifact_root.mkdir(parents=True, exist_ok=True)
    ident = _free_ident(artifact_root)

    # ansible-playbook from the same environment as this Python, and the repo's ansible.cfg.
    env = {
        **passed_env(os.environ),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        **(envvars or {}),
    }
    cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)

    # private_data_dir only carries ansible-runner's own env/ files for this call.
    with tempfile.TemporaryDirectory(prefix="servebench-runner-") as private:
        result = ansible_runner.interface.init_runner(
            private_data_dir=private,
            project_dir=str(repo),
            playbook=str(playbook_path),
            inventory=[str(p) for p in inventory_paths],
            extravars=extra,
            tags=",".join(tags) or None,
            skip_tags=",".join(skip_tags) or None,
            cmdline=cmdline or None,
            artifact_dir=str(artifact_root),
            ident=ident,
            envvars=env,
            quiet=quiet,
            timeout=timeout,
            # Facts stay in memory: a jsonfile cache would put every host's facts on disk.
            fact_cache_type="memory",
        )
        # ansible-runner seeds the child's environment with all of ours: keep only what we
        # chose plus the variables ansible-runner sets for itself.
        result.config.env = {k: v for k, v in result.config.env.items()
                             if k in env or k not in os.environ}
        result.run()
    return PlaybookRun(rc=int(result.rc), status=str(result.status),
                       artifact_dir=artifact_root / ident, run_id=run_id,
                       stats=dict(result.stats or {}))
