"""What a lease and an inference cost, in Chameleon service units (SU), from the rate table
``rates.yml`` (beside this module; SERVEBENCH_RATES names another).

Chameleon charges a node by the hour for as long as it is reserved, so:
- a lease costs its node-hours times the node type's rate (``lease_estimate``);
- 1,000 inferences cost the node-hours they hold the node for at the measured throughput, times
  the rate (``cost_per_1000``): the whole node is the unit, as it is for the charge.

A rate that is not known is null with its reason, and so is every figure made from it. The table
is read strictly: an unknown key, an alias, a duplicate key, a rate that is not a positive
number or one without its source is a ConfigError (exit 2) of one line naming the file and key.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from servebench.errors import ConfigError

RATES_ENV = "SERVEBENCH_RATES"
_MAX_BYTES = 64 * 1024
_TOP_KEYS = {"version", "money_per_su", "rates"}
_RATE_KEYS = {"site", "node_type", "su_per_node_hour", "su_per_node_hour_max", "source", "reason",
              "note"}
_MONEY_KEYS = {"amount", "currency", "source"}
UNITS = "SU"


@dataclass(frozen=True)
class Rate:
    site: str
    node_type: str
    su_per_node_hour: float | None
    su_per_node_hour_max: float | None
    source: str | None
    reason: str | None


@dataclass(frozen=True)
class Money:
    amount: float
    currency: str
    source: str


@dataclass(frozen=True)
class RateTable:
    path: Path
    rates: tuple[Rate, ...]
    money_per_su: Money | None

    def rate(self, node_type: str, site: str) -> Rate | None:
        region = site_region(site)
        return next((r for r in self.rates if r.node_type == node_type
                     and r.site.lower() == region.lower()), None)


def site_region(site: str) -> str:
    """A site as the table names it: ``tacc`` and ``CHI@TACC`` are both CHI@TACC."""
    from servebench.provision.sites import SITES

    known = SITES.get(site.lower())
    return known.region if known else site


# -- reading the table -----------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """Plain YAML only: no aliases (a few bytes of them can expand to gigabytes), no merge keys,
    no duplicate or non-scalar keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not supported in "
                                              "a rate table: write each value out", event.start_mark)
        return super().compose_node(parent, index)


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise yaml.constructor.ConstructorError(
                None, None, "only plain keys are supported (no merge key, no complex key)",
                key_node.start_mark)
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {str(key)[:40]!r}",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def default_rates_path() -> Path:
    return Path(os.environ.get(RATES_ENV) or Path(__file__).with_name("rates.yml"))


def load_rates(path: Path | None = None) -> RateTable:
    path = Path(path) if path is not None else default_rates_path()
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the rate table: {exc.strerror}",
                          hint=f"check the path, or unset {RATES_ENV}") from None
    if len(data) > _MAX_BYTES:
        raise ConfigError(f"{path}: over {_MAX_BYTES // 1024} KiB: not a rate table")
    try:
        doc = yaml.load(data.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = (getattr(exc, "problem", None) or "YAML syntax error")[:120]
        raise ConfigError(f"{path}: {where}{problem}", hint="fix the YAML") from None
    return _parse(path, doc)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(path: Path, key: str, expected: str, got: Any = ...) -> ConfigError:
    tail = "" if got is ... else f", got {_show(got)}"
    return ConfigError(f"{path}: {key}: expected {expected}{tail}")


def _number(path: Path, key: str, value: Any) -> float:
    # bool is an int to isinstance; YAML 1.1 reads 1e3 as a string, shown quoted in the error.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise _bad(path, key, "a positive number", value)
    return float(value)


def _text(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(path, key, "a non-empty string", value)
    return " ".join(value.split())


def _keys(path: Path, where: str, body: Any, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(body, dict):
        raise _bad(path, where or "(top level)", f"a mapping with {', '.join(sorted(required))}", body)
    for key in body:
        if key not in allowed:
            raise _bad(path, f"{where}.{key}" if where else str(key),
                       f"one of {', '.join(sorted(allowed))} (unknown key)")
    missing = sorted(required - set(body))
    if missing:
        raise _bad(path, f"{where}.{missing[0]}" if where else missing[0], "this key (it is missing)")
    return body


def _parse(path: Path, doc: Any) -> RateTable:
    _keys(path, "", doc, _TOP_KEYS, _TOP_KEYS)
    if doc["version"] != 1 or isinstance(doc["version"], bool):
        raise _bad(path, "version", "1", doc["version"])
    money = doc["money_per_su"]
    if money is not None:
        _keys(path, "money_per_su", money, _MONEY_KEYS, _MONEY_KEYS)
        currency = _text(path, "money_per_su.currency", money["currency"])
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise _bad(path, "money_per_su.currency", "a currency code like USD", currency)
        money = Money(_number(path, "money_per_su.amount", money["amount"]), currency,
                      _text(path, "money_per_su.source", money["source"]))
    entries = doc["rates"]
    if not isinstance(entries, list) or not entries:
        raise _bad(path, "rates", "a non-empty list of rates", entries)
    rates, seen = [], set()
    for i, body in enumerate(entries):
        rate = _parse_rate(path, f"rates[{i}]", body)
        key = (rate.site.lower(), rate.node_type)
        if key in seen:
            raise _bad(path, f"rates[{i}]", f"one rate per site and node type ({rate.site} "
                       f"{rate.node_type} is there twice)")
        seen.add(key)
        rates.append(rate)
    return RateTable(path, tuple(rates), money)


def _parse_rate(path: Path, where: str, body: Any) -> Rate:
    _keys(path, where, body, _RATE_KEYS, {"site", "node_type", "su_per_node_hour"})
    site = _text(path, f"{where}.site", body["site"])
    node_type = _text(path, f"{where}.node_type", body["node_type"])
    if "note" in body:
        _text(path, f"{where}.note", body["note"])
    if body["su_per_node_hour"] is None:
        if "source" in body or "su_per_node_hour_max" in body:
            raise _bad(path, f"{where}.su_per_node_hour", "a number when a source or a maximum "
                       "is given", None)
        return Rate(site, node_type, None, None, None,
                    _text(path, f"{where}.reason", body.get("reason")))
    if "reason" in body:
        raise _bad(path, f"{where}.reason", "no reason beside a known rate (reason says why a "
                   "rate is null)")
    su = _number(path, f"{where}.su_per_node_hour", body["su_per_node_hour"])
    su_max = None
    if "su_per_node_hour_max" in body:
        su_max = _number(path, f"{where}.su_per_node_hour_max", body["su_per_node_hour_max"])
        if su_max < su:
            raise _bad(path, f"{where}.su_per_node_hour_max", f"at least su_per_node_hour ({su:g})",
                       su_max)
    return Rate(site, node_type, su, su_max, _text(path, f"{where}.source", body.get("source")),
                None)


# -- figures ---------------------------------------------------------------------------------

def _priced(node_hours: float, node_type: str, site: str, table: RateTable | None) -> dict:
    """``node_hours`` of ``node_type`` at ``site`` in SU (and money), or null with the reason."""
    table = table or load_rates()
    rate = table.rate(node_type, site)
    out = {"node_type": node_type, "site": site_region(site), "units": UNITS, "su": None,
           "su_max": None, "money": None, "money_max": None, "source": None, "reason": None,
           "rate_su_per_node_hour": None, "rates_file": str(table.path)}
    if rate is None:
        out["reason"] = f"{table.path} has no rate for {node_type} at {site_region(site)}"
        return out
    if rate.su_per_node_hour is None:
        out["reason"] = f"no published rate for {node_type} at {rate.site}: {rate.reason}"
        return out
    out.update(su=node_hours * rate.su_per_node_hour, source=rate.source,
               rate_su_per_node_hour=rate.su_per_node_hour)
    if rate.su_per_node_hour_max is not None and rate.su_per_node_hour_max != rate.su_per_node_hour:
        out["su_max"] = node_hours * rate.su_per_node_hour_max
    money = table.money_per_su
    if money is not None:
        out["money"] = {"amount": out["su"] * money.amount, "currency": money.currency,
                        "source": money.source}
        if out["su_max"] is not None:
            out["money_max"] = {"amount": out["su_max"] * money.amount, "currency": money.currency,
                                "source": money.source}
    return out


def lease_estimate(node_type: str, site: str, hours: float, nodes: int = 1,
                   table: RateTable | None = None) -> dict:
    """What holding ``nodes`` nodes of ``node_type`` at ``site`` for ``hours`` costs: a dict
    with node_hours, su (su_max where nodes of the type differ), money, units, source, and a
    reason where su is null."""
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours >= 0) or nodes < 1:
        raise ValueError(f"hours {hours!r} and nodes {nodes!r}: need finite hours >= 0, nodes >= 1")
    node_hours = hours * nodes
    return {**_priced(node_hours, node_type, site, table), "node_hours": node_hours}


def cost_per_1000(throughput_per_s: float | None, node_type: str, site: str,
                  table: RateTable | None = None) -> dict:
    """What 1,000 inferences cost on ``node_type`` at ``site`` at the measured throughput: the
    node-hours they hold the whole node for, times its rate. ``figure`` is SU per 1,000
    inferences (null with ``reason`` when the throughput or the rate is unknown)."""
    usable = (isinstance(throughput_per_s, (int, float)) and not isinstance(throughput_per_s, bool)
              and math.isfinite(throughput_per_s) and throughput_per_s > 0)
    node_hours = 1000 / throughput_per_s / 3600 if usable else None
    priced = _priced(node_hours or 0.0, node_type, site, table)
    if not usable:
        priced.update(su=None, su_max=None, money=None, money_max=None,
                      reason=f"no measured throughput ({throughput_per_s!r} inferences/s)")
    return {**priced, "figure": priced["su"], "units": f"{UNITS} per 1000 inferences",
            "node_hours_per_1000": node_hours, "throughput_per_s": throughput_per_s if usable else None,
            "basis": "the whole node is charged while it serves, at the measured throughput"}


def describe(estimate: dict) -> str:
    """One line for a person: ``12 SU (up to 24 SU)`` and the money, or why there is none."""
    if estimate["su"] is None:
        return f"unknown ({estimate['reason']})"
    text = f"{estimate['su']:.4g} {UNITS}"
    if estimate["su_max"] is not None:
        text += f" (up to {estimate['su_max']:.4g} {UNITS} on the dearest node of the type)"
    if estimate["money"] is not None:
        text += f", {estimate['money']['amount']:.2f} {estimate['money']['currency']}"
    return text
