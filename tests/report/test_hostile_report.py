"""bench-report under hostile input (issue 10, defect 7): an --out it cannot write and a YAML
merge key in the targets file are one line with exit 2 (not 1, "a bug"), and nothing written."""

from __future__ import annotations

from .conftest import snapshot
from .runs import local_run

MERGED = """\
defaults: &defaults
  judged_on: [cpu_server]
targets:
  server_cpu:
    <<: *defaults
    title: Server CPU
    criteria:
      p50_ms_below: 3
"""


def test_an_out_folder_that_cannot_be_made_is_exit_2(tmp_path, report):
    run = local_run(tmp_path / "results")
    before = snapshot(run)
    result = report(run, "--out", "/proc/servebench-report")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cannot write the report into /proc/servebench-report")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert snapshot(run) == before


def test_a_yaml_merge_key_in_targets_is_named(tmp_path, report):
    run = local_run(tmp_path / "results")
    before = snapshot(run)
    bad = tmp_path / "targets.yml"
    bad.write_text(MERGED)
    result = report(run, "--targets", bad)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(result.stderr.splitlines()) == 1
    assert f"{bad}: line 5 column 5: YAML merge key '<<' is not supported" in line, line
    assert "constructor" not in line
    assert snapshot(run) == before
