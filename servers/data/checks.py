"""check_dataset: rules a dataset must meet, each evaluated to pass / warn / fail with the observed
value and a bounded sample of failing rows. A check on a column that does not exist fails."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from common import kinds
from common.budget import Envelope
from common.content import FileText
from common.errors import OnrecordError
from servers.data import contracts
from servers.data.context import DataContext, Source
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


class Between(_Base):
    type: Literal["between"]
    column: str
    min: float | str | None = Field(default=None, description="Lowest allowed value (numbers, dates as text)")
    max: float | str | None = Field(default=None, description="Highest allowed value")


class InSet(_Base):
    type: Literal["in_set"]
    column: str
    values: list[str | float | bool] = Field(min_length=1, max_length=1000)


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
    data, _, resolved = ctx.workspace.read_bytes(path, MAX_CONTRACT_BYTES + 1)
    where = resolved.relative
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


@dataclass
class _Pending:
    index: int
    predicate: str | None  # SQL true for a failing row
    count_at: int | None = None


def _run(sandbox: Sandbox, source: Source, rules: list[Any]) -> CheckReport:
    table = reader(source.absolute, source.format)
    names, types, _, _ = sandbox.rows(f"SELECT * FROM {table} LIMIT 0", max_rows=0)
    schema = dict(zip(names, types, strict=True))
    relation = "checked"
    sandbox.rows(f"CREATE TEMP TABLE checked AS SELECT * FROM {table}")
    results: list[CheckResult | None] = [None] * len(rules)
    exprs: list[str] = ["count(*)"]
    params: list[Any] = []
    pending: list[_Pending] = []

    def param(value: Any, cast: str | None = None) -> str:
        params.append(value)
        return f"CAST(${len(params)} AS {cast})" if cast else f"${len(params)}"

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
            pending.append(_Pending(i, None))
            continue
        col = sql_ident(column or "")
        kind = schema.get(column or "", "VARCHAR")
        predicate: str | None = None
        if isinstance(rule, NotNull):
            predicate = f"{col} IS NULL"
        elif isinstance(rule, Between):
            parts = []
            if rule.min is not None:
                parts.append(f"{col} < {param(rule.min, kind)}")
            if rule.max is not None:
                parts.append(f"{col} > {param(rule.max, kind)}")
            predicate = " OR ".join(parts) or "false"
        elif isinstance(rule, InSet):
            predicate = f"{col} IS NOT NULL AND NOT list_contains({param([str(v) for v in rule.values])}, {col}::VARCHAR)"
        elif isinstance(rule, Matches):
            predicate = f"{col} IS NOT NULL AND NOT regexp_full_match({col}::VARCHAR, {param(rule.pattern)})"
        elif isinstance(rule, Unique):
            predicate = f"{col} IN (SELECT {col} FROM {relation} GROUP BY {col} HAVING count(*) > 1)"
            exprs.append(f"count({col}) - count(DISTINCT {col})")
            pending.append(_Pending(i, predicate, len(exprs) - 1))
            continue
        elif isinstance(rule, Freshness):
            exprs.append(f"date_diff('second', max({col})::TIMESTAMP, now()::TIMESTAMP) / 3600.0")
            pending.append(_Pending(i, None, len(exprs) - 1))
            continue
        exprs.append(f"count_if({predicate})")
        pending.append(_Pending(i, predicate, len(exprs) - 1))
    row = sandbox.one(f"SELECT {', '.join(exprs)} FROM {relation}", params or None)
    rows = int(row[0])
    for p in pending:
        rule = rules[p.index]
        observed = row[p.count_at] if p.count_at is not None else None
        results[p.index] = _verdict(sandbox, relation, rule, p, observed, rows, schema, params)
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


def _verdict(
    sandbox: Sandbox,
    relation: str,
    rule: Any,
    p: _Pending,
    observed: Any,
    rows: int,
    schema: dict[str, str],
    params: list[Any],
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
        return _result(rule, "pass", failures, f"{failures} failing rows (tolerated: {rule.max_failures})")
    sample: list[dict[str, Any]] = []
    if p.predicate is not None:
        predicate, used = _renumbered(p.predicate, params)
        names, _, found, _ = sandbox.rows(
            f"SELECT * FROM {relation} WHERE {predicate} LIMIT {SAMPLE_ROWS}",
            used or None,
            max_rows=SAMPLE_ROWS,
        )
        sample = [{n: json_value(v, 120) for n, v in zip(names, r, strict=True)} for r in found]
    what = "duplicated values" if isinstance(rule, Unique) else "failing rows"
    return _result(rule, rule.severity, failures, f"{failures} {what} of {rows}", sample)


def _renumbered(predicate: str, params: list[Any]) -> tuple[str, list[Any]]:
    """The predicate with its parameters numbered from $1, and their values (a statement must use
    every parameter it is given)."""
    numbers = sorted({int(n) for n in re.findall(r"\$(\d+)", predicate)})
    mapping = {n: i + 1 for i, n in enumerate(numbers)}
    text = re.sub(r"\$(\d+)", lambda m: f"${mapping[int(m.group(1))]}", predicate)
    return text, [params[n - 1] for n in numbers]


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
