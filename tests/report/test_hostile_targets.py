"""targets.yml errors stay user errors with messages of bounded size (issue 17, item 9): a complex
key is named (exit 2, not 1); an alias bomb is refused while the file is read, before any
structure is built, in little time and memory; `1e3` is a number, a quoted "2e3" is shown as
written."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

from servebench.report.targets import load_targets

from .conftest import snapshot
from .runs import local_run

# The classic "billion laughs", where the old loader put a value into its message: 9 levels of
# 10 aliases, 10^9 strings once expanded.
_LEVELS = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"&{k} [{','.join([f'*{p}'] * 10)}]" for p, k in zip("abcdefgh", "bcdefghi")]
BOMB = ("targets:\n  t:\n    judged_on: [edge]\n    criteria: {p50_ms_below: 3}\n"
        f"    title: [{', '.join(_LEVELS)}]\n")


def test_a_complex_key_in_targets_is_named(tmp_path, report):
    run = local_run(tmp_path / "results")
    before = snapshot(run)
    bad = tmp_path / "targets.yml"
    bad.write_text("targets:\n  ? [a, b]\n  : {judged_on: [edge], criteria: {p50_ms_below: 3}}\n")
    result = report(run, "--targets", bad)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert f"{bad}: line 2 column 5: complex key '[a, b]' is not supported" in line, line
    assert snapshot(run) == before


def _limit_memory():
    # 1.5 GiB of address space: the expanded bomb needs several; a refusal needs little.
    resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))


def test_an_alias_bomb_in_targets_is_refused_quickly_in_bounded_memory(tmp_path):
    bomb = tmp_path / "targets.yml"
    bomb.write_text(BOMB)
    assert len(BOMB) < 600
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "from servebench.report.cli import main; main()",
                           str(tmp_path), "--targets", str(bomb)], capture_output=True,
                          text=True, timeout=120, preexec_fn=_limit_memory, check=False)
    took = time.monotonic() - start
    assert done.returncode == 2, done.stderr[-500:]
    (line,) = done.stderr.splitlines()
    column = BOMB.splitlines()[4].index("*a") + 1
    assert f"{bomb}: line 5 column {column}: YAML alias *a is not supported" in line, line
    assert len(line) < 300 and "lol" not in line
    assert took < 30, took


def test_exponent_thresholds_are_numbers_and_quoted_ones_are_shown_as_written(tmp_path, report):
    good = tmp_path / "good.yml"
    good.write_text("targets:\n  t:\n    judged_on: [edge]\n"
                    "    criteria: {p50_ms_below: 1e3, batch_img_per_s_at_least: 2.5E+2}\n")
    (target,) = load_targets(good).targets
    assert [t for _, t in target.criteria] == [1000.0, 250.0]
    bad = tmp_path / "bad.yml"
    bad.write_text('targets:\n  t:\n    judged_on: [edge]\n    criteria: {p50_ms_below: "1e3"}\n')
    result = report(local_run(tmp_path / "results"), "--targets", bad)
    assert result.exit_code == 2, result.output
    assert "p50_ms_below: expected a number (ms), got '1e3'" in result.stderr
