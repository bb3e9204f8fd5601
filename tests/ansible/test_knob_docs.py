"""Each knob is described once, and the README's knob tables are rendered from those descriptions:

* the run's knobs: playbooks/vars/run_argument_specs.yml (values in playbooks/vars/run.yml);
* the knobs the engine reads: the engine's settings table (`python -m servebench_engine.settings`);
* each role's: roles/<role>/meta/argument_specs.yml (values in defaults/main.yml, without a
  second copy of the text); the settings several roles share: inventory/group_vars/all.yml.

After changing one of those, rewrite the README's tables with
`.venv/bin/python -m tests.ansible.test_knob_docs`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
RUN_SPEC = REPO / "playbooks" / "vars" / "run_argument_specs.yml"
RUN_VALUES = REPO / "playbooks" / "vars" / "run.yml"
SHARED = REPO / "inventory" / "group_vars" / "all.yml"
SHARED_POINTER = "Shared by several roles: defined, and described, in inventory/group_vars/all.yml."
BLOCKS = ("run", "engine", "roles")


def _norm(text: str) -> str:
    return " ".join(str(text).split())


def engine_table() -> dict:
    done = subprocess.run([sys.executable, "-m", "servebench_engine.settings"], cwd=REPO / "benchmarks",
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def run_options() -> dict:
    return yaml.safe_load(RUN_SPEC.read_text())["argument_specs"]["run"]["options"]


def role_specs() -> dict[str, dict]:
    """role -> its main entry point's options."""
    return {p.parent.parent.name: yaml.safe_load(p.read_text())["argument_specs"]["main"]["options"]
            for p in sorted(REPO.glob("roles/*/meta/argument_specs.yml"))}


def _cell(text: str) -> str:
    return _norm(text).replace("|", "\\|")


def _value(value) -> str:
    if value in ("", None, []):
        return "-"
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return f"`{text.replace('{{ playbook_dir | dirname }}/', '')}`"


def render(block: str, table: dict | None = None) -> str:
    """The README's lines for one block, as its source says."""
    if block == "run":
        values = yaml.safe_load(RUN_VALUES.read_text())
        rows = [f"| `{name}` | {_value(values.get(name))} | {_cell(opt['description'])} |"
                for name, opt in run_options().items()]
        return "\n".join(["| knob | default | meaning |", "|---|---|---|", *rows])
    if block == "engine":
        rows = [f"| `{s['knob']}` | `{s['flag']}` | "
                f"{_value(s['default'])} | "
                f"{_cell(s['help'])} |" for s in (table or engine_table())["settings"] if s["knob"]]
        return "\n".join(["| knob | bench-run flag | default | meaning |", "|---|---|---|---|", *rows])
    shared = list(yaml.safe_load(SHARED.read_text()))
    lines = [f"- `{role}`: " + ", ".join(f"`{name}`" for name in options if name not in shared)
             for role, options in role_specs().items()]
    lines.append("- shared by several roles (`inventory/group_vars/all.yml`): "
                 + ", ".join(f"`{name}`" for name in shared))
    return "\n".join(lines)


def _markers(block: str) -> tuple[str, str]:
    return (f"<!-- knobs:{block} (rendered by tests/ansible/test_knob_docs.py) -->",
            f"<!-- /knobs:{block} -->")


def drifted(readme: str, table: dict | None = None) -> list[str]:
    """The blocks whose README text is not what their source renders."""
    wrong = []
    for block in BLOCKS:
        begin, end = _markers(block)
        if begin not in readme or end not in readme:
            wrong.append(f"{block}: markers missing")
            continue
        shown = readme.split(begin, 1)[1].split(end, 1)[0].strip()
        if shown != render(block, table):
            wrong.append(block)
    return wrong


def rewrite(readme: str) -> str:
    table = engine_table()
    for block in BLOCKS:
        begin, end = _markers(block)
        head, rest = readme.split(begin, 1)
        readme = f"{head}{begin}\n{render(block, table)}\n{end}{rest.split(end, 1)[1]}"
    return readme


def test_the_readmes_knob_tables_are_rendered_from_their_one_source():
    assert drifted(README.read_text()) == []


def test_a_hand_edit_of_a_readme_knob_table_is_caught():
    table = engine_table()
    readme = README.read_text()
    for block, old, new in (("run", "before it is marked failed", "before it is dropped"),
                            ("engine", "intra-op threads", "inter-op threads"),
                            ("roles", "`docker_users`", "`docker_user`")):
        assert old in readme, old
        assert drifted(readme.replace(old, new, 1), table) == [block]


def _comment_text(path: Path) -> str:
    return _norm(" ".join(line.lstrip("#").strip() for line in path.read_text().splitlines()
                          if line.lstrip().startswith("#")))


def test_each_knob_is_described_once():
    shared = set(yaml.safe_load(SHARED.read_text()))
    seen: dict[str, str] = {}
    for role, options in role_specs().items():
        defaults_path = REPO / "roles" / role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_path.read_text()) or {}
        comments = _comment_text(defaults_path)
        # Every default is declared, and only the shared settings are declared without one.
        assert set(defaults) <= set(options), (role, set(defaults) - set(options))
        assert set(options) - set(defaults) <= shared, (role, set(options) - set(defaults) - shared)
        for name, option in options.items():
            text = _norm(option["description"])
            if name in shared:
                assert text == SHARED_POINTER, (role, name)
                continue
            assert text not in seen, f"{role}: {name} has the description of {seen.get(text)}"
            seen[text] = name
            assert text[:60] not in comments, f"{defaults_path}: {name}'s description again"
    for option in run_options().values():
        assert _norm(option["description"]) not in seen


def test_the_engines_knobs_are_declared_by_the_engine_alone():
    table = engine_table()
    knobs = {s["knob"] for s in table["settings"] if s["knob"]}
    for role, options in role_specs().items():
        assert knobs.isdisjoint(options), (role, knobs & set(options))
        assert knobs.isdisjoint(yaml.safe_load(
            (REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}), role
    # The run's knobs that are engine settings (the plan resolves them once) point at the
    # engine's help instead of saying it again.
    for name in knobs & set(run_options()):
        setting = next(s for s in table["settings"] if s["knob"] == name)
        assert setting["flag"] in run_options()[name]["description"]
        assert _norm(setting["help"])[:40] not in _norm(run_options()[name]["description"])


def test_bench_yml_refers_to_the_knob_tables_instead_of_listing_them():
    comments = [line for line in (REPO / "bench.yml").read_text().splitlines() if line.startswith("#")]
    for line in comments:
        listed = [name for name in run_options() if re.search(rf"\b{name}\b", line)]
        assert len(listed) < 3, f"bench.yml lists knobs again: {line}"
    header = "\n".join(comments)
    assert "run_argument_specs.yml" in header and "README" in header


def test_the_roles_read_exit_codes_from_the_engines_table():
    names = {c["name"] for c in engine_table()["exit_codes"]}
    role = REPO / "roles" / "benchmark"
    text = "\n".join(p.read_text() for p in sorted(role.glob("*/*.yml")))
    used = set(re.findall(r"bench_engine\.exit_codes\.([A-Z_]+)", text))
    assert used and used <= names, used - names
    assert not re.search(r"rc \| int == [1-9][0-9]*", text), "a literal exit status in the role"


if __name__ == "__main__":
    README.write_text(rewrite(README.read_text()))
