"""Does a run fit in each testbed host's lease? An estimate of each host's run time, made in the
plan before any host is touched, compared with the host's ``lease_end`` (chi-up's inventory).

The model, per host (every figure says what it rests on, in ``basis``):

- **Work.** The host kind's engine runs (``benchmark_runs_by_kind`` in
  roles/benchmark/defaults/main.yml, or the host's own ``benchmark_runs``), each run's variant ids
  from the engine's registry (the plan passes its selections) less ``without``, within
  ``-e variants``. One *unit* is one fresh engine process measuring one (model, variant):
  units of a run = models x its variants x repeats (``-e repeats`` or the profile's).
- **Engine time, measured when it can be.** An earlier run in ``results_dir`` with the same profile
  on a host of the same kind (and node type, where the earlier run records one) measured each
  runtime's span (``<host>/runs/<runtime>/suite.json``: started_at to finished_at, every prepare,
  accuracy pass and skipped variant included); divided by its units, that is seconds per unit,
  the newest such run's figure used (its id is named). A runtime no earlier run measured falls
  back on the profile: per unit, a process start (``PROCESS_S``, assumed) plus each loop's
  warm-up and minimum duration, plus once per (model, variant) a prepare and accuracy pass
  (``FIRST_REPEAT_S``, assumed). That assumes each loop's minimum count is reached within its
  minimum duration (full: single calls under 10 ms, batches under 100 ms); a slower host runs on
  up to the loop caps, given as ``engine_cap_s`` (the caps bound the timing, not prepare).
- **The load mode** (``--load-variants``, else the profile's ``load_variants``) adds, per
  (model, variant) it names, its first repeat's sweep: ``servebench_engine.load.planned_s`` of
  the host kind's load profile on ``LOAD_CPUS[kind]`` CPUs (the sweep's points grow with the
  CPUs), its least in the estimate and its most in ``engine_cap_s``. A measured figure has it
  already (the runtime's span holds it), for the load variants that earlier run named.
- **Setup.** A fresh node (chi-up's always are) installs Docker and builds one image per docker
  runtime (or the edge's venv): ``NODE_SETUP_S`` plus ``IMAGE_BUILD_S`` per runtime, all
  assumed (no run records its setup time), and ``COLLECT_S`` for fetching records afterwards.
- **The engine time-out** (``benchmark_timeout_s_by_profile`` x models x given repeats, per engine
  run) is what the role allows, not what it expects: it is reported, never added. When it
  alone exceeds the time left, the message says so.

A host fits when estimate + margin <= time left. Hosts without ``lease_end`` (localhost) are
not checked. Input (stdin, JSON, from playbooks/tasks/lease_check.yml) and output (stdout, JSON):
see :func:`main`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from servebench_engine.load import for_profile as load_settings, planned_s
from servebench_engine.load_mode import load_profile
from servebench_engine.profiles import PROFILES, Profile

# Assumptions (no run records them): a worker process's start (interpreter, runtime imports, model
# load), a (model, variant)'s prepare + accuracy pass in its first repeat, a fresh node's setup
# (Docker, the NVIDIA toolkit, the data set), each image build (pip installs of the pinned stack:
# PyTorch's CPU wheel alone is ~200 MB) and collecting the records afterwards.
PROCESS_S = 8.0
FIRST_REPEAT_S = 60.0
NODE_SETUP_S = 300.0
IMAGE_BUILD_S = {"cpu": 900.0, "openvino": 600.0, "gpu": 1500.0, "arm": 900.0}
COLLECT_S = 120.0
# CPUs the load mode's sweep spans per host kind, before any run has reached the node: the
# hardware's spec. The servers' AMD EPYC 7763 (docs/DESIGN.md) has 64 cores, 128 threads, a
# socket (one socket assumed: a second adds one layout and one concurrency level, which the
# cap's per-point bound covers poorly: the basis says so); a Raspberry Pi 5 has 4 cores.
LOAD_CPUS = {"cpu_server": 128, "gpu_server": 128, "edge": 4}
# Runtimes that run on the control machine itself: nothing to build.
_NO_BUILD = {"local"}
# Earlier runs looked at: the newest ones, and files no bigger than a run's own.
_MAX_RUNS = 50
_MAX_FILE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Run:
    runtime: str
    variants: tuple[str, ...]


@dataclass(frozen=True)
class Measured:
    unit_s: float
    run_id: str


# -- what each host runs ---------------------------------------------------------------------

def _combine(a: dict, b: dict) -> dict:
    return {**a, **b}


def runs_by_kind(defaults: dict) -> dict[str, Any]:
    """``benchmark_runs_by_kind`` of the benchmark role's defaults, templates rendered with the
    defaults' plain values (a kind whose runs cannot be rendered maps to the reason)."""
    from jinja2.nativetypes import NativeEnvironment

    env = NativeEnvironment()
    env.filters["combine"] = _combine
    plain = {k: v for k, v in defaults.items() if not isinstance(v, str)}
    out = {}
    for kind, value in (defaults.get("benchmark_runs_by_kind") or {}).items():
        try:
            out[kind] = env.from_string(value).render(plain) if isinstance(value, str) else value
        except Exception as exc:  # noqa: BLE001 - any template error: said, not raised
            out[kind] = f"{type(exc).__name__}: {exc}"
    return out


def host_runs(runs: Any, selections: dict[str, list[str]], only: list[str]) -> list[Run]:
    """The role's expansion (roles/benchmark/tasks/run_engine.yml): ids and groups as ids, less
    ``without``, within ``only``; runs left with no id do not start."""
    out = []
    for run in runs:
        ids = [i for name in run.get("variants", []) for i in selections.get(name, [])]
        ids = [i for i in dict.fromkeys(ids) if i not in run.get("without", [])
               and i in (only or selections.get("all", []))]
        if ids:
            out.append(Run(str(run["runtime"]), tuple(ids)))
    return out


# -- what earlier runs measured ------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _time(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def measured(results_dir: Path, profile: str, kind: str, node_type: str | None) -> dict[str, Measured]:
    """Seconds per unit per runtime, from the newest earlier run of ``profile`` with a host of
    ``kind`` (and ``node_type``, where the run records one) that measured that runtime."""
    try:
        runs = sorted((p for p in results_dir.iterdir() if p.is_dir() and not p.is_symlink()),
                      key=lambda p: p.name, reverse=True)[:_MAX_RUNS]
    except OSError:
        return {}
    found: dict[str, Measured] = {}
    for run_dir in runs:
        run = _read_json(run_dir / "run.json")
        if not isinstance(run, dict) or run.get("profile") != profile:
            continue
        for host in run.get("hosts") or []:
            if not isinstance(host, dict) or host.get("kind") != kind or host.get("status") != "ok":
                continue
            if node_type and host.get("node_type") not in (None, node_type):
                continue
            host_dir = run_dir / str(host.get("host"))
            if host_dir.parent != run_dir:
                continue
            for suite_path in sorted((host_dir / "runs").glob("*/suite.json")):
                runtime = suite_path.parent.name
                suite = _read_json(suite_path)
                if runtime in found or not isinstance(suite, dict) or suite.get("status") != "complete":
                    continue
                start, end = _time(suite.get("started_at")), _time(suite.get("finished_at"))
                units = (len(suite.get("models") or [None]) * len(suite.get("variants") or [])
                         * int(suite.get("repeats") or 1))
                if start and end and end > start and units > 0:
                    found[runtime] = Measured((end - start).total_seconds() / units, run_dir.name)
    return found


# -- the estimate ----------------------------------------------------------------------------

def unit_s(profile: Profile) -> float:
    """One process measuring one (model, variant), from the profile's minimums."""
    return (PROCESS_S + profile.single.warmup_s + profile.single.min_s
            + profile.batch.warmup_s + profile.batch.min_s)


def unit_cap_s(profile: Profile) -> float:
    return (PROCESS_S + profile.single.warmup_s + profile.single.max_s
            + profile.batch.warmup_s + profile.batch.max_s)


@dataclass(frozen=True)
class LoadPlan:
    """The load mode on one host: the variants it runs for, and each one's (least, most) s."""

    variants: frozenset[str] = frozenset()
    least_s: float = 0.0
    most_s: float = 0.0
    basis: str = ""


def load_plan(profile: Profile, kind: str, named: str | None,
              selections: dict[str, list[str]]) -> LoadPlan:
    """What the load mode adds on a host of ``kind``: ``named`` is ``--load-variants`` as given
    (None: the profile's ``load_variants``; ``none``: no load mode)."""
    if named is None or not str(named).strip():
        ids = set(profile.load_variants)
    elif str(named).strip().lower() == "none":
        ids = set()
    else:
        ids = {i for part in str(named).split(",") for i in selections.get(part.strip(), [part.strip()])}
    if not ids:
        return LoadPlan()
    cpus = LOAD_CPUS.get(kind, max(LOAD_CPUS.values()))
    name = load_profile(profile.name, kind)
    least, most = planned_s(load_settings(name), cpus)
    return LoadPlan(frozenset(ids), least, most,
                    f"load mode ({name} load profile, {cpus} CPUs assumed for {kind}): "
                    f"{least:.0f} s least, {most:.0f} s most per model and variant it names")


def estimate_host(runs: list[Run], profile: Profile, models: int, repeats: int,
                  history: dict[str, Measured], timeout_s: float,
                  load: LoadPlan = LoadPlan()) -> dict:
    """Seconds this host's part of the run is expected to take, with what each part rests on."""
    engine, cap, basis, over = 0.0, 0.0, [], []
    for run in runs:
        pairs = models * len(run.variants)
        units = pairs * repeats
        loaded = models * len(load.variants.intersection(run.variants))
        if run.runtime in history:
            got = history[run.runtime]
            seconds = got.unit_s * units
            basis.append(f"{run.runtime}: {units} units x {got.unit_s:.0f} s measured in run {got.run_id}")
        else:
            seconds = unit_s(profile) * units + FIRST_REPEAT_S * pairs + load.least_s * loaded
            basis.append(f"{run.runtime}: {units} units x {unit_s(profile):.0f} s from the "
                         f"{profile.name} profile's minimums + {FIRST_REPEAT_S:.0f} s assumed per "
                         f"model and variant (prepare, accuracy)"
                         + (f" + {loaded} load sweep(s) x {load.least_s:.0f} s" if loaded else ""))
        engine += seconds
        if seconds > timeout_s:
            over.append(f"{run.runtime} ({human(seconds)})")
        cap += max(seconds, unit_cap_s(profile) * units + FIRST_REPEAT_S * pairs + load.most_s * loaded)
    if load.variants & {v for run in runs for v in run.variants}:
        basis.append(load.basis)
    builds = [r.runtime for r in runs if r.runtime not in _NO_BUILD]
    setup = (NODE_SETUP_S if builds else 0.0) + sum(IMAGE_BUILD_S.get(rt, max(IMAGE_BUILD_S.values()))
                                                   for rt in dict.fromkeys(builds))
    if builds:
        basis.append(f"setup {setup:.0f} s assumed for a fresh node ({', '.join(dict.fromkeys(builds))} "
                     f"built)")
    basis.append(f"collect {COLLECT_S:.0f} s assumed")
    sources = sorted({f"measured in run {history[r.runtime].run_id}" if r.runtime in history
                      else f"the {profile.name} profile's minimums" for r in runs})
    summary = ", ".join(([f"setup {human(setup)} assumed"] if builds else [])
                        + [f"engine {human(engine)} from {' and '.join(sources) or 'nothing to run'}",
                           f"collect {human(COLLECT_S)} assumed"])
    return {"summary": summary, "estimate_s": round(setup + engine + COLLECT_S), "setup_s": round(setup),
            "engine_s": round(engine), "engine_cap_s": round(cap), "collect_s": round(COLLECT_S),
            "timeout_s": round(timeout_s * len(runs)), "engine_runs": len(runs), "basis": basis,
            "over_timeout": over}


def human(seconds: float) -> str:
    """``2 h 05 min``, ``10 min``, ``45 s``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def extension(short_s: float) -> str:
    """chi-extend's --by for ``short_s`` seconds more, rounded up to half-hours."""
    halves = max(1, math.ceil(short_s / 1800))
    return f"{halves // 2}h{30 if halves % 2 else 0:02d}m" if halves > 1 else "30m"


def verdict(host: dict, est: dict, now: datetime, margin_s: float, override: str) -> dict:
    """Whether ``host`` fits its lease; ``message`` (one line) when it does not."""
    end = _time(host["lease_end"])
    name = host["name"]
    if end is None:
        line = (f"{name}: lease_end {str(host['lease_end'])[:40]!r} is not an ISO time (chi-status "
                f"shows the lease; chi-up writes lease_end, or run anyway: {override})")
        return {"fits": False, "left_s": None, "line": line, "message": line}
    left = (end - now).total_seconds()
    need = est["estimate_s"] + margin_s
    out = {"fits": left >= need, "left_s": round(left),
           "lease_end": end.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "timeout_exceeds_lease": est["timeout_s"] > left}
    left_text = f"{human(left)} left" if left > 0 else "already over"
    out["line"] = (f"{name}: about {human(est['estimate_s'])} ({est['summary']}); lease ends "
                   f"{out['lease_end']}, {left_text}; {'fits' if out['fits'] else 'does NOT fit'} "
                   f"with a {human(margin_s)} margin")
    timeout_note = (f"; the engine time-out alone ({est['engine_runs']} engine run(s) x "
                    f"{human(est['timeout_s'] / max(est['engine_runs'], 1))} = {human(est['timeout_s'])}) "
                    f"exceeds the lease" if out["timeout_exceeds_lease"] else "")
    if not out["fits"]:
        deployment = host.get("deployment")
        named = f" --name {deployment}" if deployment else ""
        out["message"] = (
            f"{name}: the run needs about {human(est['estimate_s'])} there ({est['summary']}) "
            f"plus a {human(margin_s)} margin, but its lease ends "
            f"{out['lease_end']}, {left_text}{timeout_note} "
            f"(extend the lease: chi-extend{named} --by {extension(need - left)}, or run anyway: {override})")
    elif timeout_note:
        out["warning"] = (f"{name}: fits ({human(est['estimate_s'])} of {human(left)} left) but"
                          f"{timeout_note}: a run that hangs is cut by the lease, not the time-out")
    return out


def check(request: dict, now: datetime | None = None) -> dict:
    """Every host's estimate and verdict: {"hosts": [...], "refused": [line, ...], "warnings": [...]}."""
    now = now or datetime.now(timezone.utc)
    repo = Path(request["repo"])
    profile = PROFILES[request["profile"]]
    given = str(request.get("repeats") or "").strip()
    repeats = int(given) if given else profile.repeats
    models = max(len(request.get("models") or []), 1)
    defaults = yaml.safe_load((repo / "roles/benchmark/defaults/main.yml").read_text(encoding="utf-8"))
    timeout_s = (defaults["benchmark_timeout_s_by_profile"][profile.name] * models
                 * (int(given) if given else 1))
    by_kind = runs_by_kind(defaults)
    override = request.get("override", "-e bench_ignore_lease=true")
    margin_s = float(request["margin_s"])
    if not 0 <= margin_s < math.inf:
        raise ValueError(f"bench_lease_margin_s must be 0 or more seconds (got {request['margin_s']})")
    out: dict[str, list] = {"hosts": [], "refused": [], "warnings": []}
    for host in request["hosts"]:
        kind = host.get("kind")
        spec = host.get("runs") if host.get("runs") is not None else by_kind.get(kind)
        if not isinstance(spec, list):
            # Unknown runs: every variant, said so.
            spec, note = [{"runtime": kind or "unknown", "variants": ["all"]}], \
                f"runs of kind {kind} not read ({spec}): every variant assumed"
        else:
            note = None
        runs = host_runs(spec, request["selections"], request.get("variants") or [])
        history = measured(Path(request["results_dir"]), profile.name, kind, host.get("node_type"))
        load = load_plan(profile, kind, host.get("load_variants"), request["selections"])
        est = estimate_host(runs, profile, models, repeats, history, timeout_s, load)
        if note:
            est["basis"].insert(0, note)
        row = {"host": host["name"], **est, **verdict(host, est, now, margin_s, override)}
        out["hosts"].append(row)
        if "message" in row:
            out["refused"].append(row["message"])
        if "warning" in row:
            out["warnings"].append(row["warning"])
        if est["over_timeout"]:
            out["warnings"].append(
                f"{host['name']}: engine run(s) {', '.join(est['over_timeout'])} are expected to "
                f"take more than the engine time-out allows one run ({human(timeout_s)}): raise "
                f"benchmark_timeout_s, or name fewer --load-variants (benchmark_load_variants)")
    return out


def main() -> int:
    """stdin: {"profile", "models": [...], "repeats": "" | N, "variants": [...], "selections":
    {id or group: [ids]}, "repo", "results_dir", "margin_s", "override": "-e ...", "hosts":
    [{"name", "kind", "lease_end", "node_type", "deployment", "runs": null | [...],
    "load_variants": null | "none" | "id,group,..."}]};
    stdout: :func:`check`'s answer. Exit 2 with one line on input it cannot read."""
    try:
        print(json.dumps(check(json.loads(sys.stdin.read()))))
    except (ValueError, KeyError, TypeError, OSError, yaml.YAMLError) as exc:
        print(f"error: cannot estimate the run's time: {type(exc).__name__}: {str(exc)[:200]}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
