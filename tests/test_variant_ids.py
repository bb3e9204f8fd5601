"""The engine's registry is the one list of variant ids: every other place that names one
(the benchmark role's runs, the README's table) must name only ids the registry knows."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from servebench_engine.variants import REGISTRY

REPO = Path(__file__).resolve().parents[1]
ROLE_DEFAULTS = REPO / "roles" / "benchmark" / "defaults" / "main.yml"
VARIANT_KEYS = ("variants", "benchmark_variant_ids")


def named_variant_ids(node, key: str | None = None) -> list[str]:
    """Every literal id under a ``variants`` key (a list of strings); templated values are the
    engine's to resolve and are left out."""
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
    return [v for v in named_variant_ids(defaults) if v not in REGISTRY]


def test_the_benchmark_roles_runs_name_only_registered_variants():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    named = named_variant_ids(defaults)

    assert named, "found no variant lists in the role's defaults: the walker lost them"
    assert unknown_ids(defaults) == []


def test_a_misspelled_id_in_a_roles_list_is_caught():
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    defaults.setdefault("benchmark_runs_by_kind", {})["edge"] = [
        {"runtime": "arm", "variants": ["onnx-cpu", "onnx-int8-statik"]}]

    assert unknown_ids(defaults) == ["onnx-int8-statik"]


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
