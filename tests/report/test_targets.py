"""targets.yml: shipped defaults, strict validation, one-line errors with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from servebench.errors import ConfigError
from servebench.report.targets import default_targets_path, load_targets

from .conftest import snapshot
from .runs import local_run

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "targets.yml"


def test_defaults_are_the_shipped_file():
    assert default_targets_path() == SHIPPED
    assert load_targets(None).targets == load_targets(SHIPPED).targets


def test_shipped_targets_are_designs():
    """The numbers docs/DESIGN.md sets for the three options, with its strict/inclusive wording."""
    got = {t.id: (t.judged_on, {c.key: (v, c.symbol) for c, v in t.criteria})
           for t in load_targets(SHIPPED).targets}
    assert got == {
        "server_cpu": (("cpu_server",), {"p50_ms_below": (3.0, "<"),
                                         "batch_img_per_s_at_least": (1000.0, ">=")}),
        "server_gpu": (("gpu_server",), {"p50_ms_below": (1.0, "<"),
                                         "batch_img_per_s_at_least": (5000.0, ">=")}),
        "edge": (("edge",), {"model_size_mb_below": (5.0, "<"), "p50_ms_below": (15.0, "<")}),
    }


GOOD_TARGET = """\
targets:
  server_cpu:
    title: Server CPU
    judged_on: [cpu_server]
    criteria:
      p50_ms_below: 3
"""

# (name, file text, what the one error line must contain besides the file name)
MALFORMED = [
    ("yaml-syntax", "targets:\n  server_cpu: [unclosed\n", "YAML syntax error"),
    ("empty-file", "", "(top level)"),
    ("missing-section", "limits:\n  p50: 3\n", "limits"),
    ("no-targets-key", "{}\n", "targets: expected a 'targets' section"),
    ("unknown-target-key", GOOD_TARGET.replace("    title:", "    colour: red\n    title:"),
     "targets.server_cpu.colour"),
    ("unknown-criterion", GOOD_TARGET.replace("p50_ms_below", "p42_ms_below"),
     "targets.server_cpu.criteria.p42_ms_below"),
    ("non-numeric", GOOD_TARGET.replace(": 3", ": three"),
     "targets.server_cpu.criteria.p50_ms_below: expected a number (ms), got 'three'"),
    ("quoted-number", GOOD_TARGET.replace(": 3", ": '3'"),
     "targets.server_cpu.criteria.p50_ms_below: expected a number"),
    ("boolean", GOOD_TARGET.replace(": 3", ": true"),
     "targets.server_cpu.criteria.p50_ms_below: expected a number"),
    ("negative", GOOD_TARGET.replace(": 3", ": -3"),
     "targets.server_cpu.criteria.p50_ms_below: expected a positive number (ms), got -3"),
    ("infinite", GOOD_TARGET.replace(": 3", ": .inf"),
     "targets.server_cpu.criteria.p50_ms_below: expected a positive number"),
    ("missing-criteria", GOOD_TARGET.split("    criteria:")[0], "targets.server_cpu.criteria"),
    ("missing-judged-on", GOOD_TARGET.replace("    judged_on: [cpu_server]\n", ""),
     "targets.server_cpu.judged_on"),
    ("unknown-host-kind", GOOD_TARGET.replace("[cpu_server]", "[mainframe]"),
     "targets.server_cpu.judged_on: expected host kinds among"),
    ("duplicate-key", GOOD_TARGET + "      p50_ms_below: 30\n", "duplicate key 'p50_ms_below'"),
]


@pytest.mark.parametrize("text,expected", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_targets_exit_2_with_one_line_and_write_nothing(tmp_path, report, text,
                                                                  expected):
    run = local_run(tmp_path / "results")
    bad = tmp_path / "targets.yml"
    bad.write_text(text)
    before = snapshot(run)

    result = report(run, "--targets", bad)

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {bad}: ")
    assert expected in lines[0]
    assert snapshot(run) == before


def test_load_targets_raises_config_error(tmp_path):
    bad = tmp_path / "t.yml"
    bad.write_text(GOOD_TARGET.replace(": 3", ": -1"))
    with pytest.raises(ConfigError) as err:
        load_targets(bad)
    assert err.value.exit_code == 2


def test_missing_targets_file(tmp_path, report):
    run = local_run(tmp_path / "results")
    result = report(run, "--targets", tmp_path / "nope.yml")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yml'}: file not found (check the --targets path)"


def test_a_targets_file_of_megabytes_is_refused_unread(tmp_path):
    huge = tmp_path / "targets.yml"
    huge.write_text("# " + "x" * 2_000_000 + "\n" + GOOD_TARGET)
    with pytest.raises(ConfigError,
                       match=r"2,000,\d\d\d bytes, larger than a targets file can be \(1,000,000\)"):
        load_targets(huge)


def test_user_edited_targets_change_the_verdict(tmp_path, report):
    run = local_run(tmp_path / "results")
    lenient = tmp_path / "targets.yml"
    lenient.write_text(GOOD_TARGET.replace(": 3", ": 100"))
    result = report(run, "--targets", lenient)
    assert result.exit_code == 0, result.output
    # With p50 < 100 ms, every local variant meets it (indicatively); torch-eager is the slowest.
    assert "met by onnx-int8-static-aggressive" in result.stdout
    assert "torch-eager on localhost" in result.stdout
