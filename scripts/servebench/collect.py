"""``python -m servebench.collect RUN_DIR < plan.json``: write a run's run-level files.

The collect play (playbooks/collect.yml) fetches each host's records into RUN_DIR/<host>/ and
then calls this, with what only Ansible knows on stdin (the run's settings and, per host, the
stage that failed). It writes, valid against the one schema (servebench.schema):

- <host>/suite.json: the engine runs' summaries (runs/<runtime>/suite.json) merged;
- <host>/host_status.json: ok, or failed with the stage and the reason;
- run.json: the run's settings and every host's status;
- results/latest -> RUN_DIR, when some host left results.

The plan on stdin::

    {"run_id": str, "profile": str, "variants": [str], "model": str, "tflite_model": str,
     "started_at": str, "repo": str, "models": [str] (optional: every model, in order),
     "repeats": int or null (optional: null, the profile's),
     "hosts": [{"host": str, "kind": str, "failure": {"stage": str, "reason": str} or {},
                "site": str or null, "node_type": str or null (optional: the inventory's)}]}

A host's ``site`` and ``node_type`` (chi-up's inventory hostvars; what servebench.cost prices it
by) go into its entry of run.json, null where the inventory has none (localhost) or not a string.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from .command import OneLineCommand
from .errors import OutputError, ServebenchError, UsageError
from .files import write_private
from .schema import HOST_KINDS, SCHEMA_VERSION, loads, problem, version_problem

RUNS_DIR = "runs"
SUITE_FILE = "suite.json"
HOST_STATUS_FILE = "host_status.json"
RUN_FILE = "run.json"
LATEST = "latest"
_PLAN_KEYS = ("run_id", "profile", "variants", "model", "tflite_model", "started_at", "repo",
              "hosts")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(document, None), or (None, why it is not readable JSON)."""
    try:
        return loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # NaN and Infinity too
        return None, f"not readable JSON ({' '.join(str(exc).split())[:120]})"


def read_suites(host_dir: Path) -> tuple[list[tuple[str, dict]], list[str]]:
    """(runtime, summary) of each engine run of a host, and what was wrong with the others."""
    suites, problems = [], []
    for path in sorted((host_dir / RUNS_DIR).glob(f"*/{SUITE_FILE}")):
        doc, why = _read_json(path)
        why = why or version_problem(doc, "rerun the benchmark stage") or problem("suite", doc)
        if why:
            problems.append(f"{path.relative_to(host_dir)}: {why}")
        else:
            suites.append((path.parent.name, doc))
    return suites, problems


def merge_suites(suites: list[tuple[str, dict]]) -> dict:
    """One summary for the host: the first run's settings, every run's variants and results, the
    first unfinished status (complete only if all are), the last finish, the runtimes."""
    docs = [doc for _, doc in suites]
    merged = dict(docs[0])
    unfinished = [doc for doc in docs if doc["status"] != "complete"]
    finished = [doc["finished_at"] for doc in docs if doc["finished_at"]]
    merged.update(
        variants=[v for doc in docs for v in doc["variants"]],
        results={k: v for doc in docs for k, v in doc["results"].items()},
        status=unfinished[0]["status"] if unfinished else "complete",
        finished_at=max(finished) if finished else None,
        runtimes=[runtime for runtime, _ in suites])
    merged.pop("reason", None)
    if unfinished and "reason" in unfinished[0]:
        merged["reason"] = unfinished[0]["reason"]
    return merged


def host_status(host: dict, has_results: bool, problems: list[str]) -> dict:
    failure = host.get("failure") or {}
    kind = host.get("kind") or "unknown"
    if kind not in HOST_KINDS:
        # The plan checks kinds; one that slips through fails its host here, not the collect.
        problems = [f"host_kind {ascii(kind)[:60]} is not one of "
                    f"{', '.join(HOST_KINDS)}: set host_kind in the inventory"] + problems
        kind = "unknown"
    reason = "; ".join(filter(None, [failure.get("reason"), *problems])) or (
        None if has_results else "no results were collected from this host")
    return {"host": host["host"], "kind": kind,
            "status": "failed" if failure or problems or not has_results else "ok",
            "stage": failure.get("stage"), "reason": reason}


def priced_by(host: dict) -> dict:
    """What run.json adds to a host's status: its site and node_type."""
    return {"site": _hostvar(host.get("site")), "node_type": _hostvar(host.get("node_type"))}


def _hostvar(value: Any) -> str | None:
    """An inventory string as run.json keeps it; anything else (unset, a number, a list) is
    null: a host is then priced as one without a node type, never by a guess."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def _refused(run_dir: Path, name: str) -> str | None:
    """Why a host's folder must be neither read nor written, or None: every write stays inside
    the run folder, never through a link or up out of it."""
    if name in (".", "..") or "/" in name or "\0" in name:
        return f"host name {ascii(name)[:80]} is not a folder name: nothing collected for it"
    if (run_dir / name).is_symlink():
        return (f"{name}/ in the run folder is a symlink: refused, nothing is read or written "
                "through a link")
    return None


def _git_revision(repo: str) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], cwd=repo,
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _write(path: Path, kind: str, doc: dict) -> None:
    wrong = problem(kind, doc)
    if wrong:  # what we made ourselves: a bug, never written
        raise ServebenchError(f"{path.name} would not match the schema ({wrong})")
    try:
        write_private(path, json.dumps(doc, indent=2, allow_nan=False) + "\n", mode=0o644)
    except OSError as exc:
        raise OutputError(f"cannot write {exc.filename or path}: {exc.strerror or exc}",
                          hint="free space or make the results folder writable") from None


def _check_plan(plan: Any) -> dict:
    if not isinstance(plan, dict):
        raise UsageError("the plan on stdin is not a JSON object")
    missing = [key for key in _PLAN_KEYS if key not in plan]
    if missing:
        raise UsageError(f"the plan on stdin lacks {', '.join(missing)}")
    if not all(isinstance(h, dict) and h.get("host") and isinstance(h["host"], str)
               for h in plan["hosts"]):
        raise UsageError("the plan's hosts must each be an object with a host name")
    return plan


def collect(run_dir: Path, plan: dict) -> dict:
    """Write the run-level files of ``run_dir``; return run.json as written."""
    plan = _check_plan(plan)
    statuses, collected_any = [], False
    for host in plan["hosts"]:
        refused = _refused(run_dir, host["host"])
        if refused:
            statuses.append({**host_status(host, False, [refused]), **priced_by(host)})
            continue
        host_dir = run_dir / host["host"]
        suites, problems = read_suites(host_dir)
        if suites:
            _write(host_dir / SUITE_FILE, "suite", merge_suites(suites))
        collected_any = collected_any or bool(suites)
        status = host_status(host, bool(suites), problems)
        _write(host_dir / HOST_STATUS_FILE, "host_status", status)
        statuses.append({**status, **priced_by(host)})
    earlier, _ = _read_json(run_dir / RUN_FILE)
    started = earlier.get("started_at") if isinstance(earlier, dict) else None
    run = {
        "schema_version": SCHEMA_VERSION,
        "run_id": plan["run_id"],
        "profile": plan["profile"],
        "variants": list(plan["variants"]) or None,
        "model": plan["model"] or "random-init",
        "models": list(plan.get("models") or []) or [plan["model"] or "random-init"],
        "repeats": plan.get("repeats"),
        "tflite_model": plan["tflite_model"] or None,
        "hosts": statuses,
        # A second collect of the same run keeps when the run began.
        "started_at": started if isinstance(started, str) else plan["started_at"],
        "finished_at": now_iso(),
        "git_revision": _git_revision(plan["repo"]),
    }
    _write(run_dir / RUN_FILE, "run", run)
    if collected_any:
        _point_latest(run_dir)
    return run


def _point_latest(run_dir: Path) -> None:
    """results/latest -> <run-id>, replaced in one rename (a reader never finds it missing)."""
    latest = run_dir.parent / LATEST
    if latest.exists() and not latest.is_symlink():
        raise OutputError(f"{latest} is a real folder or file, not the link servebench keeps: "
                          f"left as it is, and not pointed at {run_dir.name} (the run's files "
                          "are written)", hint=f"move {latest} away, then collect again")
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, latest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot point {latest} at {run_dir.name}: {exc.strerror or exc}") from None


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
def main(run_dir: Path) -> None:
    """Write RUN_DIR's run.json and each host's suite.json and host_status.json from the fetched
    records, with the plan (JSON) read from stdin. The collect play runs it."""
    try:
        plan = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        raise UsageError(f"the plan on stdin is not JSON: {exc.msg} at line {exc.lineno}") from None
    run = collect(run_dir, plan)
    for host in run["hosts"]:
        click.echo(f"{host['host']}: {host['status']}"
                   + (f" ({host['reason']})" if host["reason"] else ""))


if __name__ == "__main__":
    main()
