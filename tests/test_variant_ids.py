"""The engine's registry is the one list of variant ids: the benchmark role's runs name only ids
and groups the engine knows (the engine expands the groups), every id the engine has is placed
in some runtime of the testbed kinds, and the README's table is the registry in its order."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from servebench_engine.variants import GROUPS, REGISTRY

REPO = Path(__file__).resolve().parents[1]
ROLE_DEFAULTS = REPO / "roles" / "benchmark" / "defaults" / "main.yml"
# Keys of a run that name variants: the ids or groups it runs, and the ids it leaves out.
VARIANT_KEYS = ("variants", "without")
TESTBED_KINDS = ("cpu_server", "gpu_server", "edge")


def named_variant_ids(node, key: str | None = None) -> list[str]:
    """Every literal id or group under a variant key (a list of strings)."""
    found: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            found += named_variant_ids(v, k)
    elif isinstance(node, list):
        if key in VARIANT_KEYS and all(isinstance(v, str) for v in node):
            return list(node)
        for v in node:
            found += named_variant_ids(v, key)
    return found


def unknown_ids(defaults: dict) -> list[str]:
    return [v for v in named_variant_ids(defaults) if v not in REGISTRY and v not in GROUPS]


def kind_runs(defaults: dict, kind: str) -> list[dict]:
    """A kind's runs as the role resolves them (the gpu_server's CPU runs are the cpu_server's)."""
    runs = defaults["benchmark_runs_by_kind"][kind]
    if isinstance(runs, str):
        assert "benchmark_cpu_server_runs" in runs, runs
        runs = defaults["benchmark_cpu_server_runs"] + [
            {"runtime": runtime, "variants": names.replace("'", "").split(", ")}
            for runtime, names in re.findall(r"'runtime': '([^']+)', 'variants': \[([^]]*)\]", runs)]
    return runs


def placed_ids(defaults: dict) -> set[str]:
    """The ids the testbed kinds' runs run, expanded as run_engine.yml expands them."""
    placed: set[str] = set()
    for kind in TESTBED_KINDS:
        for run in kind_runs(defaults, kind):
            ids = [v for name in run["variants"] for v in GROUPS.get(name, (name,))]
            placed |= set(ids) - set(run.get("without", []))
    return placed


def test_the_benchmark_roles_runs_name_only_registered_variants():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    named = named_variant_ids(defaults)

    assert named, "found no variant lists in the role's defaults: the walker lost them"
    assert unknown_ids(defaults) == []
    assert "benchmark_variant_ids" not in defaults, "a second list of every id"


def test_a_misspelled_id_in_a_roles_list_is_caught():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    defaults.setdefault("benchmark_runs_by_kind", {})["edge"] = [
        {"runtime": "arm", "variants": ["cpu"], "without": ["onnx-int8-statik"]}]

    assert unknown_ids(defaults) == ["onnx-int8-statik"]


def test_every_engine_id_runs_somewhere_on_the_testbed():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())

    assert set(REGISTRY) - placed_ids(defaults) == set()
    # Each once per kind: a CPU variant runs in the cpu image, not again in the openvino one.
    for kind in TESTBED_KINDS:
        runs = [set(v for n in r["variants"] for v in GROUPS.get(n, (n,))) - set(r.get("without", []))
                for r in kind_runs(defaults, kind)]
        assert sum(len(r) for r in runs) == len(set().union(*runs)), (kind, runs)


def test_an_engine_id_no_runtime_places_is_caught():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    for run in defaults["benchmark_cpu_server_runs"] + defaults["benchmark_runs_by_kind"]["edge"]:
        run.setdefault("without", []).append("onnx-cpu")

    assert "onnx-cpu" not in placed_ids(defaults)


def test_the_readmes_variant_table_is_the_registry_in_its_order():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| variant | what is served |"):]
    table = table[:table.index("\n\n")]
    ids: list[str] = []
    for line in table.splitlines():
        cell = re.match(r"\| (`[^|]+`) \|", line)
        if cell:
            ids += re.findall(r"`([a-z0-9-]+)`", cell.group(1))

    assert ids == list(REGISTRY)
