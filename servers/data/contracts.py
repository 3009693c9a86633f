"""Contracts teams already write, read into check_dataset's checks: a documented subset of the Open
Data Contract Standard (ODCS v3) and of Soda's checks language (SodaCL).

Every rule of the file becomes a check. A rule outside the subset is kept as a `not_evaluated`
check, reported as a warning naming the rule, so a contract never passes on what was not checked;
so is a rule with a key that would change its meaning and that we do not evaluate (an ODCS
`mustBeGreaterThan` on a count, `unit: percent`, `arguments` beyond those below, a
`logicalTypeOptions` key other than `minimum`, `maximum` and `pattern`; a SodaCL configuration key
such as `missing values` or `filter`). Keys that only describe an ODCS rule (`name`,
`description`, `dimension`, `severity`, `tags`, ...) are accepted. A file nesting deeper than
MAX_DEPTH levels is an error.

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
from collections.abc import Collection
from typing import Any

from common.errors import OnrecordError


class ContractError(OnrecordError):
    """A contract file cannot be read as one of the formats we know."""


MAX_DEPTH = 64  # lists and tables inside one another; real contracts nest a handful


class _TooDeep(Exception):
    pass


@functools.cache
def _loader() -> Any:
    """A YAML loader without anchors and aliases (a small file cannot expand into a huge
    structure) that stops past MAX_DEPTH levels (before Python's recursion limit); yaml is
    imported on the first contract, not when the server starts."""
    import yaml
    from yaml.composer import ComposerError

    class NoAliases(yaml.SafeLoader):
        depth = 0
        # Dates and times stay text, as a check's bounds and values are written (read in the
        # column's type when compared).
        yaml_implicit_resolvers = {  # noqa: RUF012 - a copy of the base class's, never changed
            first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ComposerError(
                    None, None, "anchors and aliases are not accepted in a contract", event.start_mark
                )
            if self.depth >= MAX_DEPTH:
                raise _TooDeep
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return NoAliases


def load_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ContractError(f"contract {where!r} is not valid YAML: {str(exc)[:300]}") from None
    except (_TooDeep, RecursionError):
        raise too_deep(where) from None


def too_deep(where: str) -> ContractError:
    return ContractError(f"contract {where!r} nests deeper than {MAX_DEPTH} levels; flatten it")


def check_depth(document: Any, where: str) -> None:
    """Raise ContractError when lists and tables nest deeper than MAX_DEPTH (walked without
    recursion, so any depth a parser returned is measured safely)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    raise too_deep(where)
                stack.append((child, depth + 1))


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
            if extra := _unused(options, _TYPE_OPTIONS):
                rest = {k: options[k] for k in options if k not in _TYPE_OPTIONS}
                checks.append(_unsupported(f"{column}: logicalTypeOptions {rest}", _outside(extra)))
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


# Keys of an ODCS quality rule that describe it without changing what it checks.
_RULE_INFO = frozenset(
    {
        "id",
        "name",
        "description",
        "dimension",
        "severity",
        "businessImpact",
        "method",
        "schedule",
        "scheduler",
        "tags",
        "customProperties",
        "authoritativeDefinitions",
        "type",
        "metric",
        "rule",
        "unit",
    }
)
_COUNT_BOUNDS = ("mustBe", "mustBeLessOrEqualTo", "mustBeLessThan")
_ROW_BOUNDS = frozenset(
    {
        "mustBe",
        "mustBeGreaterThan",
        "mustBeGreaterOrEqualTo",
        "mustBeLessThan",
        "mustBeLessOrEqualTo",
        "mustBeBetween",
    }
)
_TYPE_OPTIONS = frozenset({"minimum", "maximum", "pattern"})


def _unused(table: dict[Any, Any], known: Collection[str]) -> list[str]:
    """The keys of `table` outside `known`: each changes what a rule means, so a rule with one is
    reported as not evaluated rather than checked without it."""
    return [str(k) for k in table if k not in known]


def _outside(keys: list[str]) -> str:
    return (
        f"{', '.join(map(repr, keys[:5]))} {'is' if len(keys) == 1 else 'are'} outside the supported subset"
    )


def _tolerance(rule: dict[str, Any]) -> int | None:
    """Failing rows a rule tolerates: `mustBe: N`, `mustBeLessThan: N+1`, `mustBeLessOrEqualTo: N`
    (the least when it gives several)."""
    limits = []
    for key, shift in zip(_COUNT_BOUNDS, (0, 0, -1), strict=True):
        value = rule.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            limits.append(max(0, math.floor(value) + shift))
    return min(limits) if limits else None


def _unsupported(rule: Any, why: str) -> dict[str, Any]:
    return {"type": "not_evaluated", "rule": str(rule)[:500], "reason": why, "severity": "warn"}


def _odcs_extra(rule: dict[str, Any], used: Collection[str]) -> str | None:
    """Why an ODCS rule cannot be evaluated as written: a key it gives that changes its meaning,
    or a tolerance not counted in rows."""
    if extra := _unused(rule, _RULE_INFO | set(used)):
        return _outside(extra)
    if rule.get("unit") not in (None, "rows"):
        return f"unit {rule['unit']!r} is outside the supported subset (rows only)"
    return None


def _odcs_column_rule(rule: Any, column: str) -> dict[str, Any]:
    metric = _metric(rule)
    if not isinstance(rule, dict) or not metric:
        return _unsupported(rule, "a quality rule without a metric")
    tolerated = _tolerance(rule)
    if tolerated is None:
        return _unsupported(rule, "only mustBe, mustBeLessThan and mustBeLessOrEqualTo bound a count here")
    base = {"column": column, "max_failures": tolerated}
    given = rule.get("arguments")
    arguments: dict[str, Any] = given if isinstance(given, dict) else {}
    check: dict[str, Any] | None = None
    used_arguments: set[str] = set()
    used = {*_COUNT_BOUNDS, "arguments"}
    if metric in ("nullValues", "nullCheck", "missingValues"):
        check = {"type": "not_null", **base}
    elif metric in ("duplicateValues", "duplicateCount"):
        check = {"type": "unique", **base}
    elif metric in ("invalidValues", "validValues"):
        valid = arguments.get("validValues", rule.get("validValues"))
        if isinstance(valid, list) and valid:
            check = {"type": "in_set", "values": valid, **base}
            used_arguments, used = {"validValues"}, used | {"validValues"}
        elif isinstance(arguments.get("pattern"), str):
            check = {"type": "matches", "pattern": arguments["pattern"], **base}
            used_arguments = {"pattern"}
        else:
            return _unsupported(rule, "invalidValues needs validValues or a pattern")
    if check is None:
        return _unsupported(rule, f"metric {metric!r} is outside the supported subset")
    if given is not None and not isinstance(given, dict):
        return _unsupported(rule, "arguments must be a table")
    why = _odcs_extra(rule, used)
    if why is None and (extra := _unused(arguments, used_arguments)):
        why = "arguments " + _outside(extra)
    return check if why is None else _unsupported(rule, why)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _odcs_table_rule(rule: Any) -> dict[str, Any]:
    if _metric(rule) != "rowCount" or not isinstance(rule, dict):
        return _unsupported(rule, f"table rule {_metric(rule) or '?'!r} is outside the supported subset")
    if (why := _odcs_extra(rule, _ROW_BOUNDS)) is not None:
        return _unsupported(rule, why)
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
            elif not isinstance(config, dict):
                checks.append(_unsupported(item, "a check's configuration must be a table of keys"))
            else:
                checks.append(_soda_check(str(key).strip(), config))
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
    """The check of one SodaCL line; not evaluated when its configuration has a key the check
    would not use (`missing values`, `valid min`, `filter`, ...), which changes its meaning."""
    check = _soda_line(line, config)
    if check["type"] == "not_evaluated":
        return check
    used = {"name"}
    if check["type"] == "in_set":
        used.add("valid values")
    elif check["type"] == "matches":
        used.add("valid regex")
    if extra := _unused(config, used):
        return _unsupported({line: config}, _outside(extra))
    return check


def _soda_line(line: str, config: dict[str, Any]) -> dict[str, Any]:
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
