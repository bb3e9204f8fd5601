"""The rate table (scripts/servebench/rates.yml) and the cost figures made from it: the
arithmetic against known values, nulls that carry their reason, strict reading of the file, and
chi-up --dry-run's estimate."""

from __future__ import annotations

import math

import pytest

from servebench import cost
from servebench.errors import ConfigError
from tests.provision.cli_fixtures import Cli, cli  # noqa: F401

TABLE = """\
version: 1
money_per_su: {amount: 0.5, currency: USD, source: "a test's own figure"}
rates:
  - site: CHI@TACC
    node_type: compute_liqid
    su_per_node_hour: 4
    su_per_node_hour_max: 8
    source: the test
  - site: CHI@UC
    node_type: compute_gigaio
    su_per_node_hour: 2.5
    source: the test
  - site: CHI@Edge
    node_type: raspberrypi5
    su_per_node_hour: null
    reason: nobody published one
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "rates.yml"
    path.write_text(TABLE)
    return cost.load_rates(path)


def test_a_lease_costs_its_node_hours_times_the_rate(table):
    three_hours = cost.lease_estimate("compute_liqid", "tacc", 3, table=table)
    assert (three_hours["node_hours"], three_hours["su"], three_hours["su_max"]) == (3, 12, 24)
    assert three_hours["money"] == {"amount": 6.0, "currency": "USD", "source": "a test's own figure"}
    assert three_hours["money_max"]["amount"] == 12.0
    assert three_hours["units"] == "SU" and three_hours["source"] == "the test"
    two_nodes = cost.lease_estimate("compute_gigaio", "CHI@UC", 1.5, nodes=2, table=table)
    assert (two_nodes["node_hours"], two_nodes["su"], two_nodes["su_max"]) == (3, 7.5, None)
    assert cost.describe(three_hours) == \
        "12 SU (up to 24 SU on the dearest node of the type), 6.00 USD"


def test_1000_inferences_cost_the_node_hours_they_hold_the_node_for(table):
    # 1000 inferences at 500/s hold the node 2 s = 1/1800 h; at 2.5 SU/h: 2.5/1800 SU.
    figure = cost.cost_per_1000(500.0, "compute_gigaio", "uc", table=table)
    assert math.isclose(figure["figure"], 2.5 / 1800) and figure["su"] == figure["figure"]
    assert math.isclose(figure["node_hours_per_1000"], 1 / 1800)
    assert figure["units"] == "SU per 1000 inferences" and figure["source"] == "the test"
    assert math.isclose(figure["money"]["amount"], 0.5 * 2.5 / 1800)
    liqid = cost.cost_per_1000(1000.0, "compute_liqid", "tacc", table=table)
    assert math.isclose(liqid["figure"], 4 / 3600) and math.isclose(liqid["su_max"], 8 / 3600)


@pytest.mark.parametrize("throughput", [0, -1.0, float("nan"), float("inf"), None, True])
def test_no_measured_throughput_gives_no_figure_and_says_why(table, throughput):
    figure = cost.cost_per_1000(throughput, "compute_gigaio", "uc", table=table)
    assert figure["figure"] is None and figure["money"] is None
    assert figure["reason"].startswith("no measured throughput")


def test_an_unknown_rate_is_null_with_its_reason(table):
    edge = cost.lease_estimate("raspberrypi5", "edge", 2, table=table)
    assert edge["su"] is None and edge["money"] is None
    assert edge["reason"] == "no published rate for raspberrypi5 at CHI@Edge: nobody published one"
    per_1000 = cost.cost_per_1000(30.0, "raspberrypi5", "CHI@Edge", table=table)
    assert per_1000["figure"] is None and "nobody published one" in per_1000["reason"]
    missing = cost.lease_estimate("gpu_mi100", "tacc", 1, table=table)
    assert missing["su"] is None and "has no rate for gpu_mi100 at CHI@TACC" in missing["reason"]


def test_the_shipped_table_reads_and_names_a_source_or_a_reason_for_every_rate():
    table = cost.load_rates()
    assert table.path.name == "rates.yml" and table.money_per_su is None
    by_type = {r.node_type: r for r in table.rates}
    assert set(by_type) >= {"compute_liqid", "compute_gigaio", "raspberrypi5"}
    for rate in table.rates:
        assert (rate.source if rate.su_per_node_hour is not None else rate.reason)
    assert "chameleoncloud.org" in by_type["compute_gigaio"].source
    assert by_type["raspberrypi5"].su_per_node_hour is None


BAD = {
    "unknown_key": (TABLE.replace("    source: the test\n  - site: CHI@UC",
                                  "    source: the test\n    sourse: typo\n  - site: CHI@UC"),
                    "rates[0].sourse: expected one of"),
    "no_source": (TABLE.replace("    su_per_node_hour: 2.5\n    source: the test\n",
                                "    su_per_node_hour: 2.5\n"),
                  "rates[1].source: expected a non-empty string, got None"),
    "null_without_reason": (TABLE.replace("    reason: nobody published one\n", ""),
                            "rates[2].reason: expected a non-empty string"),
    "negative": (TABLE.replace("su_per_node_hour: 2.5", "su_per_node_hour: -2.5"),
                 "rates[1].su_per_node_hour: expected a positive number, got -2.5"),
    "nan": (TABLE.replace("su_per_node_hour: 2.5", "su_per_node_hour: .nan"),
            "rates[1].su_per_node_hour: expected a positive number, got nan"),
    "yaml11_string": (TABLE.replace("su_per_node_hour: 2.5", "su_per_node_hour: 1e3"),
                      "rates[1].su_per_node_hour: expected a positive number, got '1e3'"),
    "max_below_rate": (TABLE.replace("su_per_node_hour_max: 8", "su_per_node_hour_max: 2"),
                       "rates[0].su_per_node_hour_max: expected at least su_per_node_hour (4)"),
    "twice": (TABLE + "  - {site: chi@uc, node_type: compute_gigaio, su_per_node_hour: 1, "
                      "source: again}\n", "rates[3]: expected one rate per site and node type"),
    "duplicate_key": (TABLE.replace("version: 1\n", "version: 1\nversion: 1\n"),
                      "duplicate key 'version'"),
    "alias": ("version: 1\nmoney_per_su: &m null\nrates: *m\n", "aliases (*name) are not supported"),
    "merge_key": (TABLE.replace("    su_per_node_hour: 2.5\n", "    <<: {su_per_node_hour: 2.5}\n"),
                  "only plain keys are supported"),
    "currency": (TABLE.replace("currency: USD", "currency: dollars"),
                 "money_per_su.currency: expected a currency code like USD"),
    "not_a_mapping": ("- 1\n- 2\n", "(top level): expected a mapping"),
    "binary": ("\udcff", "not a text file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_rate_table_is_one_line_naming_the_file_and_key(tmp_path, case):
    text, words = BAD[case]
    path = tmp_path / "rates.yml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError) as caught:
        cost.load_rates(path)
    message = caught.value.format()
    assert str(path) in message and words in message, message
    assert "\n" not in message and len(message) < 400, message


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    path = tmp_path / "rates.yml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases"):
        cost.load_rates(path)


def test_dry_run_prints_the_leases_cost(cli: Cli):
    result = cli.up("tacc", "serve_cost", "--dry-run", "--duration", "3h")
    assert result.exit_code == 0, result.output
    assert "cost estimate: 3 node-hours of compute_liqid at CHI@TACC: 12 SU (up to 24 SU" in \
        result.output, result.output
    assert "rate: 4 SU per node-hour" in result.output and "chameleoncloud.org" in result.output
    edge = cli.up("edge", "serve_cost_edge", "--dry-run", "--duration", "2h")
    assert edge.exit_code == 0, edge.output
    assert "cost estimate: 2 node-hours of raspberrypi5 at CHI@Edge: unknown (no published " \
           "rate for raspberrypi5 at CHI@Edge" in edge.output, edge.output


def test_dry_run_with_a_broken_rate_table_is_exit_2(cli: Cli, tmp_path, monkeypatch):
    path = tmp_path / "rates.yml"
    path.write_text(TABLE.replace("su_per_node_hour: 2.5", "su_per_node_hour: cheap"))
    monkeypatch.setenv(cost.RATES_ENV, str(path))
    result = cli.up("uc", "serve_cost_bad", "--dry-run")
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: rates[1].su_per_node_hour: expected a positive number")
