"""Contracts teams already write, read into check_dataset's checks: a documented subset of the Open
Data Contract Standard (ODCS v3) and of Soda's checks language (SodaCL).

Every rule of the file becomes a check. A rule outside the subset is kept as a `not_evaluated`
check, reported as a warning naming the rule, so a contract never passes on what was not checked.

ODCS v3 (the schema object named like the dataset file, or the only one):
- property `required: true` -> not_null; `unique: true` -> unique; `primaryKey: true` -> both;
- `logicalTypeOptions` `minimum` / `maximum` -> between; `pattern` -> matches;
- property quality rules `nullValues` / `nullCheck` / `missingValues` -> not_null, `duplicateValues` /
  `duplicateCount` -> unique, `invalidValues` / `validValues` with valid values -> in_set, the
  tolerance from `mustBe`, `mustBeLessThan` or `mustBeLessOrEqualTo`;
- schema quality rule `rowCount` with `mustBe`, `mustBeGreaterThan`, `mustBeGreaterOrEqualTo`,
  `mustBeLessThan`, `mustBeLessOrEqualTo` or `mustBeBetween` -> row_count.

SodaCL (`checks for NAME:`): `row_count <op> N` and `row_count between A and B`,
`missing_count(col)`, `duplicate_count(col)`, `invalid_count(col)` with `valid values` or
`valid regex` (each `= N`, `< N`, `<= N`), `min(col) >= X`, `max(col) <= X`, `freshness(col) < 1d`
(`s`, `m`, `h`, `d`), and `schema: fail: when required column missing: [...]`.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from common.errors import OnrecordError


class ContractError(OnrecordError):
    """A contract file cannot be read as one of the formats we know."""


@functools.cache
def _loader() -> Any:
    """A YAML loader without anchors and aliases (a small file cannot expand into a huge
    structure); yaml is imported on the first contract, not when the server starts."""
    import yaml
    from yaml.composer import ComposerError

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ComposerError(
                    None, None, "anchors and aliases are not accepted in a contract", event.start_mark
                )
            return super().compose_node(parent, index)

    return NoAliases


def load_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ContractError(f"contract {where!r} is not valid YAML: {str(exc)[:300]}") from None


def convert(document: Any, dataset: str, where: str) -> list[dict[str, Any]] | None:
    """The checks (as dicts for validation) of an ODCS or SodaCL document; None when it is neither."""
    if not isinstance(document, dict):
        return None
    if str(document.get("apiVersion", "")).startswith("v3") or document.get("kind") == "DataContract":
        return _odcs(document, dataset, where)
    soda = {k: v for k, v in document.items() if isinstance(k, str) and k.startswith("checks for ")}
    if soda:
        return _soda(soda, dataset, where)
    return None


# -------------------------------------------------------------------------------------------- ODCS


def _odcs(document: dict[str, Any], dataset: str, where: str) -> list[dict[str, Any]]:
    objects = [o for o in document.get("schema") or [] if isinstance(o, dict)]
    if not objects:
        raise ContractError(f"contract {where!r} (ODCS) has no schema objects")
    named = [o for o in objects if dataset in (o.get("name"), o.get("physicalName"))]
    if len(named) != 1 and len(objects) != 1:
        names = ", ".join(repr(o.get("name")) for o in objects[:20])
        raise ContractError(
            f"contract {where!r} (ODCS) describes {len(objects)} schema objects ({names}) and none is "
            f"named {dataset!r} like the dataset; name one after the dataset file"
        )
    table = named[0] if named else objects[0]
    checks: list[dict[str, Any]] = []
    for prop in table.get("properties") or []:
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            continue
        column = prop["name"]
        if prop.get("required") or prop.get("primaryKey"):
            checks.append({"type": "not_null", "column": column})
        if prop.get("unique") or prop.get("primaryKey"):
            checks.append({"type": "unique", "column": column})
        options = prop.get("logicalTypeOptions") or {}
        if isinstance(options, dict):
            low, high = options.get("minimum"), options.get("maximum")
            if low is not None or high is not None:
                checks.append({"type": "between", "column": column, "min": low, "max": high})
            if isinstance(options.get("pattern"), str):
                checks.append({"type": "matches", "column": column, "pattern": options["pattern"]})
        for rule in prop.get("quality") or []:
            checks.append(_odcs_column_rule(rule, column))
    for rule in table.get("quality") or []:
        checks.append(_odcs_table_rule(rule))
    return checks


def _metric(rule: Any) -> str:
    return (
        str(rule.get("metric") or rule.get("rule") or rule.get("type") or "")
        if isinstance(rule, dict)
        else ""
    )


def _tolerance(rule: dict[str, Any]) -> int | None:
    """Failing rows a rule tolerates: `mustBe: N`, `mustBeLessThan: N+1`, `mustBeLessOrEqualTo: N`."""
    for key, shift in (("mustBe", 0), ("mustBeLessOrEqualTo", 0), ("mustBeLessThan", -1)):
        value = rule.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(0, math.floor(value) + shift)
    return None


def _unsupported(rule: Any, why: str) -> dict[str, Any]:
    return {"type": "not_evaluated", "rule": str(rule)[:500], "reason": why, "severity": "warn"}


def _odcs_column_rule(rule: Any, column: str) -> dict[str, Any]:
    metric = _metric(rule)
    if not isinstance(rule, dict) or not metric:
        return _unsupported(rule, "a quality rule without a metric")
    tolerated = _tolerance(rule)
    if tolerated is None:
        return _unsupported(rule, "only mustBe, mustBeLessThan and mustBeLessOrEqualTo bound a count here")
    base = {"column": column, "max_failures": tolerated}
    if metric in ("nullValues", "nullCheck", "missingValues"):
        return {"type": "not_null", **base}
    if metric in ("duplicateValues", "duplicateCount"):
        return {"type": "unique", **base}
    if metric in ("invalidValues", "validValues"):
        given = rule.get("arguments")
        arguments: dict[str, Any] = given if isinstance(given, dict) else {}
        valid = arguments.get("validValues", rule.get("validValues"))
        if isinstance(valid, list) and valid:
            return {"type": "in_set", "values": valid, **base}
        if isinstance(arguments.get("pattern"), str):
            return {"type": "matches", "pattern": arguments["pattern"], **base}
        return _unsupported(rule, "invalidValues needs validValues or a pattern")
    return _unsupported(rule, f"metric {metric!r} is outside the supported subset")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _odcs_table_rule(rule: Any) -> dict[str, Any]:
    if _metric(rule) != "rowCount" or not isinstance(rule, dict):
        return _unsupported(rule, f"table rule {_metric(rule) or '?'!r} is outside the supported subset")
    low: float | None = None
    high: float | None = None
    between = rule.get("mustBeBetween")
    if isinstance(between, list) and len(between) == 2:
        low, high = _number(between[0]), _number(between[1])
    if (n := _number(rule.get("mustBe"))) is not None:
        low = high = n
    if (n := _number(rule.get("mustBeGreaterThan"))) is not None:
        low = math.floor(n) + 1
    if (n := _number(rule.get("mustBeGreaterOrEqualTo"))) is not None:
        low = math.ceil(n)
    if (n := _number(rule.get("mustBeLessThan"))) is not None:
        high = math.ceil(n) - 1
    if (n := _number(rule.get("mustBeLessOrEqualTo"))) is not None:
        high = math.floor(n)
    if low is None and high is None:
        return _unsupported(rule, "rowCount needs mustBe, mustBeGreaterThan, ... or mustBeBetween")
    return {
        "type": "row_count",
        "min": None if low is None else max(0, int(low)),
        "max": None if high is None else max(0, int(high)),
    }


# --------------------------------------------------------------------------------------- SodaCL

_COMPARE = r"(?P<op><=|>=|=|<|>)\s*(?P<n>-?\d+(?:\.\d+)?)"
_COUNT = re.compile(
    rf"^(?P<metric>missing_count|duplicate_count|invalid_count)\((?P<col>[^)]+)\)\s*{_COMPARE}$"
)
_ROWS = re.compile(rf"^row_count\s*{_COMPARE}$")
_ROWS_BETWEEN = re.compile(r"^row_count\s+between\s+(?P<a>\d+)\s+and\s+(?P<b>\d+)$")
_MINMAX = re.compile(rf"^(?P<fn>min|max)\((?P<col>[^)]+)\)\s*{_COMPARE}$")
_FRESH = re.compile(r"^freshness\((?P<col>[^)]+)\)\s*<\s*(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhd])$")
_UNITS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}


def _soda(sections: dict[str, Any], dataset: str, where: str) -> list[dict[str, Any]]:
    names = {k.removeprefix("checks for ").strip(): v for k, v in sections.items()}
    if dataset not in names and len(names) != 1:
        raise ContractError(
            f"contract {where!r} (SodaCL) has checks for {', '.join(map(repr, names))}, none named "
            f"{dataset!r} like the dataset"
        )
    items = names.get(dataset, next(iter(names.values())))
    checks: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            checks.append(_soda_check(item.strip(), {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((key, config),) = item.items()
            if str(key).strip() == "schema":
                checks += _soda_schema(config, item)
            else:
                checks.append(_soda_check(str(key).strip(), config if isinstance(config, dict) else {}))
        else:
            checks.append(_unsupported(item, "not a SodaCL check line"))
    return checks


def _count_limit(op: str, n: float) -> int | None:
    if op in ("=", "<="):
        return int(n)
    if op == "<":
        return max(0, math.ceil(n) - 1)
    return None


def _soda_check(line: str, config: dict[str, Any]) -> dict[str, Any]:
    if m := _ROWS_BETWEEN.match(line):
        return {"type": "row_count", "min": int(m["a"]), "max": int(m["b"])}
    if m := _ROWS.match(line):
        n, op = float(m["n"]), m["op"]
        bounds = {
            ">": (math.floor(n) + 1, None),
            ">=": (math.ceil(n), None),
            "<": (None, math.ceil(n) - 1),
            "<=": (None, math.floor(n)),
            "=": (int(n), int(n)),
        }[op]
        return {"type": "row_count", "min": bounds[0], "max": bounds[1]}
    if m := _COUNT.match(line):
        limit = _count_limit(m["op"], float(m["n"]))
        if limit is None:
            return _unsupported(line, "a count check must be bounded from above (=, <, <=)")
        base = {"column": m["col"].strip(), "max_failures": limit}
        if m["metric"] == "missing_count":
            return {"type": "not_null", **base}
        if m["metric"] == "duplicate_count":
            return {"type": "unique", **base}
        if isinstance(config.get("valid values"), list):
            return {"type": "in_set", "values": config["valid values"], **base}
        if isinstance(config.get("valid regex"), str):
            return {"type": "matches", "pattern": config["valid regex"], **base}
        return _unsupported(line, "invalid_count needs `valid values` or `valid regex`")
    if m := _MINMAX.match(line):
        column, n = m["col"].strip(), float(m["n"])
        if m["fn"] == "min" and m["op"] in (">=", ">"):
            return {"type": "between", "column": column, "min": n}
        if m["fn"] == "max" and m["op"] in ("<=", "<"):
            return {"type": "between", "column": column, "max": n}
        return _unsupported(line, "min() takes >= and max() takes <=")
    if m := _FRESH.match(line):
        hours = float(m["n"]) * _UNITS[m["unit"]]
        return {"type": "freshness", "column": m["col"].strip(), "max_age_hours": hours}
    return _unsupported(line, "outside the supported SodaCL subset")


def _soda_schema(config: Any, item: Any) -> list[dict[str, Any]]:
    fail = config.get("fail") if isinstance(config, dict) else None
    columns = fail.get("when required column missing") if isinstance(fail, dict) else None
    if not isinstance(columns, list):
        return [_unsupported(item, "only `fail: when required column missing: [...]` is supported")]
    return [{"type": "column_exists", "column": str(c)} for c in columns]
