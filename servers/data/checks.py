"""check_dataset: rules a dataset must meet, each evaluated to pass / warn / fail with the observed
value and a bounded sample of failing rows. A check on a column that does not exist fails; a key a
check does not have, or a range check without a bound, is an error.

Values are compared in the column's type, never as text and never rounded: an `in_set` value is
read as the column's type (5 matches 5, true matches true, 1.5 and "1.50" match 1.500); one the type
cannot hold exactly (text that does not parse, 5.5 or "5.4" for an integer column, 1.2345 for
DECIMAL(18,3)) matches no row, and the result's message names it. A `between` bound on an integer
or decimal column keeps its own type (x = 5 fails `min: 5.4`); other bounds are read as the
column's type (dates, text)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from common import kinds
from common.budget import Envelope
from common.content import FileText
from common.errors import OnrecordError
from servers.data import contracts
from servers.data.context import DataContext, Source, refuse_git_internals
from servers.data.formats import reader
from servers.data.params import DatasetPath, Ref
from servers.data.sandbox import Sandbox, sql_ident
from servers.data.values import json_value

MAX_CHECKS = 100
SAMPLE_ROWS = 5
MAX_CONTRACT_BYTES = 1024 * 1024


# More rows than any dataset here holds (DuckDB counts in 64-bit integers).
MAX_ROWS = 10**15


class CheckError(OnrecordError):
    """A check list or contract file is malformed."""


class _Base(BaseModel):
    """A check's keys are exactly its fields: a misspelt key is an error naming the keys there are,
    never a rule quietly left out. (The validator refuses them rather than `extra="forbid"`, whose
    `additionalProperties: false` would keep the listed schema from saying shared fields once.)"""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [str(k) for k in data if k not in cls.model_fields]
            if unknown:
                keys = [k for k in cls.model_fields if k not in _Base.model_fields] + list(_Base.model_fields)
                raise ValueError(
                    f"unknown key {', '.join(map(repr, unknown[:5]))} in a {data.get('type', '?')} check; "
                    f"its keys are {', '.join(keys)}"
                )
        return data

    severity: Literal["fail", "warn"] = Field(default="fail", description="What a violation is reported as")
    max_failures: int = Field(
        default=0, ge=0, le=MAX_ROWS, description="Failing rows tolerated before the check fails"
    )


class NotNull(_Base):
    type: Literal["not_null"]
    column: str


class Unique(_Base):
    type: Literal["unique"]
    column: str


Bound = StrictInt | StrictFloat | StrictStr


class Between(_Base):
    type: Literal["between"]
    column: str
    min: Bound | None = Field(default=None, description="Lowest allowed value (numbers, dates as text)")
    max: Bound | None = Field(default=None, description="Highest allowed value")

    @model_validator(mode="after")
    def _bounded(self) -> Between:
        _ordered(self.min, self.max, "between")
        return self


class InSet(_Base):
    type: Literal["in_set"]
    column: str
    values: list[StrictBool | StrictInt | StrictFloat | StrictStr] = Field(
        min_length=1, max_length=1000, description="Allowed values, compared as the column's type"
    )


class Matches(_Base):
    type: Literal["matches"]
    column: str
    pattern: str = Field(
        min_length=1, max_length=1000, description="RE2 regular expression the whole value matches"
    )


class RowCount(_Base):
    type: Literal["row_count"]
    min: int | None = Field(default=None, ge=0, le=MAX_ROWS)
    max: int | None = Field(default=None, ge=0, le=MAX_ROWS)

    @model_validator(mode="after")
    def _bounded(self) -> RowCount:
        _ordered(self.min, self.max, "row_count")
        return self


def _ordered(low: Any, high: Any, kind: str) -> None:
    """A range check needs a bound, and a lowest value no higher than its highest."""
    if low is None and high is None:
        raise ValueError(f"a {kind} check needs `min`, `max` or both")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if numbers and low > high:
        raise ValueError(f"`min` {low!r} is greater than `max` {high!r}, so no value could pass")


class ColumnExists(_Base):
    type: Literal["column_exists"]
    column: str


class Freshness(_Base):
    type: Literal["freshness"]
    column: str
    max_age_hours: float = Field(gt=0, le=10**6, description="The newest value must be at most this old")


class NotEvaluated(_Base):
    """A contract's rule outside the subset we evaluate: reported as a warning, never a pass."""

    type: Literal["not_evaluated"]
    rule: str = Field(description="The contract's rule, as written")
    reason: str


Check = Annotated[
    NotNull | Unique | Between | InSet | Matches | RowCount | ColumnExists | Freshness,
    Field(discriminator="type"),
]
_CHECKS = TypeAdapter(list[Check])
_CONTRACT_CHECKS = TypeAdapter(
    list[
        Annotated[
            NotNull | Unique | Between | InSet | Matches | RowCount | ColumnExists | Freshness | NotEvaluated,
            Field(discriminator="type"),
        ]
    ]
)


class CheckResult(BaseModel):
    check: dict[str, Any] = Field(description="The check as given")
    status: Literal["pass", "warn", "fail"]
    observed: Any = Field(
        default=None, description="The value the verdict rests on (failing rows, count, age)"
    )
    message: str
    failing_rows: list[dict[str, Any]] = Field(default_factory=list, description="Up to 5 rows that break it")


class CheckReport(Envelope, FileText):
    path: str
    ref: str | None = None
    rows: int
    status: Literal["pass", "warn", "fail"] = Field(description="The worst status of any check")
    passed: int
    warned: int
    failed: int
    results: list[CheckResult]


async def check_dataset(
    ctx: DataContext,
    path: DatasetPath,
    checks: Annotated[
        list[Check] | None,
        Field(
            description="Checks, e.g. [{'type': 'not_null', 'column': 'id'}, {'type': 'between', 'column': "
            "'amount', 'min': 0}, {'type': 'row_count', 'min': 1}]; types: not_null, unique, between, in_set, "
            "matches, row_count, column_exists, freshness; each may set severity ('fail' or 'warn') and "
            "max_failures",
            max_length=MAX_CHECKS,
        ),
    ] = None,
    contract: Annotated[
        str | None,
        Field(
            description="A contract file under the root: an ODCS v3 data contract or SodaCL checks (YAML), "
            "or {'checks': [...]} in the form above (JSON, TOML or YAML); rules outside the supported "
            "subset are reported as warnings, never passed"
        ),
        kinds.PATH,
    ] = None,
    ref: Ref = None,
) -> CheckReport:
    """Check a dataset against rules: each check passes, warns or fails with the observed value and
    up to 5 failing rows. Give `checks` inline or a `contract` file; a check naming a column that
    does not exist fails."""
    rules = list(checks or [])
    if contract is not None:
        rules += _contract(ctx, contract, path)
    if not rules:
        raise CheckError("no checks given; pass `checks` or a `contract` file")
    if len(rules) > MAX_CHECKS:
        raise CheckError(f"{len(rules)} checks given; at most {MAX_CHECKS} per call")
    async with ctx.source(path, ref) as source:
        return await ctx.run([source.absolute], lambda sandbox: _run(sandbox, source, rules))


def _contract(ctx: DataContext, path: str, dataset: str) -> list[Any]:
    refuse_git_internals(ctx.workspace.resolve(path).relative, "a contract")
    data, _, resolved = ctx.workspace.read_bytes(path, MAX_CONTRACT_BYTES + 1)
    where = resolved.relative
    refuse_git_internals(where, "a contract")
    if len(data) > MAX_CONTRACT_BYTES:
        raise CheckError(f"contract {where!r} is larger than 1 MB")
    try:
        text = data.decode("utf-8")
        if where.endswith(".toml"):
            parsed = tomllib.loads(text)
        elif where.endswith((".yaml", ".yml")):
            parsed = contracts.load_yaml(text, where)
        else:
            parsed = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckError(f"contract {where!r} is not valid JSON, TOML or YAML: {exc}") from None
    except RecursionError:
        raise contracts.too_deep(where) from None
    contracts.check_depth(parsed, where)
    # An ODCS v3 contract or SodaCL checks, else our own form: {"checks": [...]}.
    stem = dataset.rsplit("/", 1)[-1].split(".", 1)[0]
    raw = contracts.convert(parsed, stem, where)
    if raw is None:
        raw = parsed.get("checks") if isinstance(parsed, dict) else None
    if not isinstance(raw, list):
        raise CheckError(
            f"contract {where!r} has no 'checks' list and is neither an ODCS v3 contract nor SodaCL checks"
        )
    try:
        return list(_CONTRACT_CHECKS.validate_python(raw))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckError(f"contract {resolved.relative!r}: checks.{where}: {first['msg']}") from None


RELATION = "checked"
# Column types whose values a bound or set value is compared with in its own type (5.4 stays 5.4
# against an integer column, where a cast to the column's type would make it 5).
_EXACT = re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|DECIMAL\(\d+,\s*\d+\)")
_FLOATING = frozenset({"FLOAT", "REAL", "DOUBLE"})
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class _Pending:
    index: int
    sampled: bool  # failing rows can be shown
    count_at: int | None = None
    note: str = ""


class _Params:
    """The positional parameters of one statement, numbered as they are added: a predicate is
    built afresh for each statement it goes into, so no placeholder is ever renumbered."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str | None = None) -> str:
        self.values.append(value)
        return f"CAST(${len(self.values)} AS {cast})" if cast else f"${len(self.values)}"


def _run(sandbox: Sandbox, source: Source, rules: list[Any]) -> CheckReport:
    table = reader(source.absolute, source.format)
    names, types, _, _ = sandbox.rows(f"SELECT * FROM {table} LIMIT 0", max_rows=0)
    schema = dict(zip(names, types, strict=True))
    sandbox.rows(f"CREATE TEMP TABLE {RELATION} AS SELECT * FROM {table}")
    results: list[CheckResult | None] = [None] * len(rules)
    exprs: list[str] = ["count(*)"]
    params = _Params()
    pending: list[_Pending] = []

    for i, rule in enumerate(rules):
        if isinstance(rule, NotEvaluated):
            results[i] = _result(rule, "warn", None, f"not evaluated: {rule.reason}")
            continue
        column = getattr(rule, "column", None)
        if column is not None and column not in schema:
            results[i] = _result(
                rule, "fail", None, f"no column {column!r}; the columns are {', '.join(names[:30])}"
            )
            continue
        if isinstance(rule, ColumnExists | RowCount):
            pending.append(_Pending(i, False))
            continue
        col = sql_ident(column or "")
        kind = schema.get(column or "", "VARCHAR")
        if isinstance(rule, Freshness):
            exprs.append(f"date_diff('second', max({col})::TIMESTAMP, now()::TIMESTAMP) / 3600.0")
            pending.append(_Pending(i, False, len(exprs) - 1))
            continue
        note = _value_set(sandbox, i, kind, rule.values) if isinstance(rule, InSet) else ""
        if isinstance(rule, Unique):
            exprs.append(f"count({col}) - count(DISTINCT {col})")
        else:
            exprs.append(f"count_if({_predicate(rule, i, col, kind, params)})")
        pending.append(_Pending(i, True, len(exprs) - 1, note))
    row = sandbox.one(f"SELECT {', '.join(exprs)} FROM {RELATION}", params.values or None)
    rows = int(row[0])
    for p in pending:
        rule = rules[p.index]
        observed = row[p.count_at] if p.count_at is not None else None
        results[p.index] = _verdict(sandbox, rule, p, observed, rows, schema)
    final = [r for r in results if r is not None]
    counts = {s: sum(1 for r in final if r.status == s) for s in ("pass", "warn", "fail")}
    worst = "fail" if counts["fail"] else "warn" if counts["warn"] else "pass"
    return CheckReport(
        path=source.path,
        ref=source.ref,
        rows=rows,
        status=worst,
        passed=counts["pass"],
        warned=counts["warn"],
        failed=counts["fail"],
        results=final,
        total=len(final),
        returned=len(final),
    )


def _predicate(rule: Any, index: int, col: str, kind: str, params: _Params) -> str:
    """SQL true for a row that breaks `rule`, with its parameters numbered in `params`."""
    if isinstance(rule, NotNull):
        return f"{col} IS NULL"
    if isinstance(rule, Between):
        parts = []
        if rule.min is not None:
            parts.append(f"{col} < {_bound(rule.min, kind, params)}")
        if rule.max is not None:
            parts.append(f"{col} > {_bound(rule.max, kind, params)}")
        return " OR ".join(parts)
    if isinstance(rule, InSet):
        return f"{col} IS NOT NULL AND {col} NOT IN (SELECT x FROM {_set_table(index)} WHERE x IS NOT NULL)"
    if isinstance(rule, Matches):
        return f"{col} IS NOT NULL AND NOT regexp_full_match({col}::VARCHAR, {params.add(rule.pattern)})"
    if isinstance(rule, Unique):
        return f"{col} IN (SELECT {col} FROM {RELATION} GROUP BY {col} HAVING count(*) > 1)"
    raise CheckError(f"no predicate for a {rule.type} check")


def _bound(value: int | float | str, kind: str, params: _Params) -> str:
    """A between bound as SQL: against an integer or decimal column a number keeps its own type
    (the comparison then happens in a type that holds both), anything else is cast to the
    column's type (dates, text, floating point)."""
    if _EXACT.fullmatch(kind):
        number = _as_number(value) if isinstance(value, str) else value
        if isinstance(number, int) and _INT64[0] <= number <= _INT64[1]:
            return params.add(number, "BIGINT")
        if isinstance(number, int | float):
            try:
                return params.add(float(number), "DOUBLE")
            except OverflowError:
                raise CheckError(f"the bound {value!r} is too large to compare") from None
    return params.add(value, kind)


def _as_number(text: str) -> int | float | str:
    for parse in (int, float):
        try:
            return parse(text.strip())
        except ValueError:
            continue
    return text


def _set_table(index: int) -> str:
    return f"in_set_{index}"


def _value_set(sandbox: Sandbox, index: int, kind: str, values: list[Any]) -> str:
    """Make a table of check `index`'s values read as the column's type `kind`, for a comparison in
    that type (5 matches 5, true matches true, 1.5 matches 1.500). A value the type cannot hold
    exactly (text that does not parse, 5.5 or true for an integer, 1.2345 for DECIMAL(18,3))
    matches no row; the note returned names those values."""
    groups: dict[str, tuple[list[int], list[Any]]] = {
        t: ([], []) for t in ("BOOLEAN", "BIGINT", "DOUBLE", "VARCHAR")
    }
    for i, value in enumerate(values):
        if isinstance(value, bool):
            group = "BOOLEAN"
        elif isinstance(value, int):
            group = "BIGINT" if _INT64[0] <= value <= _INT64[1] else "VARCHAR"
        elif isinstance(value, float):
            group = "DOUBLE"
        else:
            group = "VARCHAR"
        groups[group][0].append(i)
        groups[group][1].append(value if group != "VARCHAR" else str(value))
    params = _Params()
    parts = []
    floating = kind in _FLOATING
    for group, (positions, given) in groups.items():
        if not positions:
            continue
        at, vs = params.add(positions, "INTEGER[]"), params.add(given, f"{group}[]")
        if floating:
            exact = "true"  # a FLOAT holds few decimals exactly; compare in the column's precision
        elif group == "VARCHAR":  # text that reads as a number must keep its value (no '5.4' -> 5)
            exact = "TRY_CAST(v AS DOUBLE) IS NULL OR TRY_CAST(x AS DOUBLE) = TRY_CAST(v AS DOUBLE)"
        else:
            exact = f"TRY_CAST(x AS {group}) = v"
        parts.append(
            f"SELECT i, CASE WHEN {exact} THEN x END AS x FROM "
            f"(SELECT i, v, TRY_CAST(v AS {kind}) AS x FROM (SELECT unnest({at}) AS i, unnest({vs}) AS v))"
        )
    table = _set_table(index)
    sandbox.rows(f"CREATE TEMP TABLE {table} AS {' UNION ALL '.join(parts)}", params.values)
    _, _, unusable, _ = sandbox.rows(f"SELECT i FROM {table} WHERE x IS NULL ORDER BY i")
    if not unusable:
        return ""
    shown = ", ".join(_short(values[i]) for (i,) in unusable[:5])
    more = f" and {len(unusable) - 5} more" if len(unusable) > 5 else ""
    return f"; {len(unusable)} of the set's values cannot be read as {kind} and match no row: {shown}{more}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _verdict(
    sandbox: Sandbox, rule: Any, p: _Pending, observed: Any, rows: int, schema: dict[str, str]
) -> CheckResult:
    if isinstance(rule, ColumnExists):
        return _result(rule, "pass", rule.column, f"column {rule.column!r} exists ({schema[rule.column]})")
    if isinstance(rule, RowCount):
        ok = (rule.min is None or rows >= rule.min) and (rule.max is None or rows <= rule.max)
        return _result(rule, "pass" if ok else rule.severity, rows, f"{rows} rows")
    if isinstance(rule, Freshness):
        if observed is None:
            return _result(
                rule, rule.severity, None, f"column {rule.column!r} has no values, so no date to judge"
            )
        age = float(observed)
        fresh = age <= rule.max_age_hours
        return _result(
            rule,
            "pass" if fresh else rule.severity,
            round(age, 3),
            f"the newest value is {age:.1f} hours old (limit {rule.max_age_hours:g})",
        )
    failures = int(observed or 0)
    if failures <= rule.max_failures:
        return _result(
            rule, "pass", failures, f"{failures} failing rows (tolerated: {rule.max_failures}){p.note}"
        )
    sample: list[dict[str, Any]] = []
    if p.sampled:
        params = _Params()
        predicate = _predicate(rule, p.index, sql_ident(rule.column), schema[rule.column], params)
        names, _, found, _ = sandbox.rows(
            f"SELECT * FROM {RELATION} WHERE {predicate} LIMIT {SAMPLE_ROWS}",
            params.values or None,
            max_rows=SAMPLE_ROWS,
        )
        sample = [{n: json_value(v, 120) for n, v in zip(names, r, strict=True)} for r in found]
    what = "duplicated values" if isinstance(rule, Unique) else "failing rows"
    return _result(rule, rule.severity, failures, f"{failures} {what} of {rows}{p.note}", sample)


def _result(
    rule: Any, status: Any, observed: Any, message: str, sample: list[dict[str, Any]] | None = None
) -> CheckResult:
    return CheckResult(
        check=rule.model_dump(exclude_defaults=False),
        status=status,
        observed=json_value(observed),
        message=message,
        failing_rows=sample or [],
    )
