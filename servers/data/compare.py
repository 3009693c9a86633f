"""compare_datasets: schema changes, row counts and per-column drift (PSI) between two datasets,
or one dataset at two git revisions."""

from __future__ import annotations

import contextlib
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from common import kinds
from common.budget import Envelope
from common.content import FileText
from common.errors import OnrecordError
from servers.data.context import DataContext, Source
from servers.data.formats import reader
from servers.data.params import DatasetPath, Ref
from servers.data.profile import kind_of, sql_double
from servers.data.sandbox import Sandbox, sql_ident
from servers.data.values import as_float

BINS = 10
TOP_CATEGORIES = 20
EPSILON = 1e-4  # PSI smoothing for empty bins
MINOR, MAJOR = 0.1, 0.25
MAX_COLUMNS = 200
Verdict = Literal["stable", "minor_drift", "major_drift"]


class CompareError(OnrecordError):
    """The two sides are the same dataset, or cannot be compared."""


class TypeChange(BaseModel):
    column: str
    a: str
    b: str


class ColumnDrift(BaseModel):
    column: str
    kind: Literal["numeric", "categorical"]
    psi: float = Field(description="Population stability index of b against a")
    verdict: Verdict = Field(description=f"stable below {MINOR}, minor_drift below {MAJOR}, else major_drift")
    null_fraction_a: float
    null_fraction_b: float
    mean_a: float | None = None
    mean_b: float | None = None


class Comparison(Envelope, FileText):
    a: str
    b: str
    a_ref: str | None = None
    b_ref: str | None = None
    rows_a: int
    rows_b: int
    row_change: int
    added_columns: list[str]
    removed_columns: list[str]
    type_changes: list[TypeChange]
    drift: list[ColumnDrift]
    verdict: Literal["no_change", "minor_drift", "major_drift", "schema_changed"]
    thresholds: dict[str, float] = Field(default_factory=lambda: {"minor_drift": MINOR, "major_drift": MAJOR})

    def content_paths(self) -> list[str]:
        return [self.a, self.b]


async def compare_datasets(
    ctx: DataContext,
    a: DatasetPath,
    b: Annotated[
        str | None,
        Field(description="The second dataset, relative to the root; default: `a` again (compare two refs)"),
        kinds.DATASET,
    ] = None,
    a_ref: Ref = None,
    b_ref: Ref = None,
) -> Comparison:
    """Compare two datasets, or one dataset at two git revisions (`a_ref`, `b_ref`; omit one for
    the working tree): columns added, removed or retyped, row counts, and per-column distribution
    drift as PSI (deciles of `a` for numbers, top 20 values for categories) with a verdict."""
    second = b if b is not None else a
    same = "a and b are the same dataset at the same revision; pass another `b` or a `b_ref`"
    if second == a and a_ref == b_ref:
        raise CompareError(same)
    async with contextlib.AsyncExitStack() as stack:
        left = await stack.enter_async_context(ctx.source(a, a_ref))
        right = await stack.enter_async_context(ctx.source(second, b_ref))
        if left.path == right.path and left.ref == right.ref:  # two spellings of one file (./x, x)
            raise CompareError(same)
        return await ctx.run([left.absolute, right.absolute], lambda sandbox: _compare(sandbox, left, right))


def _compare(sandbox: Sandbox, left: Source, right: Source) -> Comparison:
    ta, tb = reader(left.absolute, left.format), reader(right.absolute, right.format)
    names_a, types_a, _, _ = sandbox.rows(f"SELECT * FROM {ta} LIMIT 0", max_rows=0)
    names_b, types_b, _, _ = sandbox.rows(f"SELECT * FROM {tb} LIMIT 0", max_rows=0)
    sa, sb = dict(zip(names_a, types_a, strict=True)), dict(zip(names_b, types_b, strict=True))
    sandbox.rows(f"CREATE TEMP TABLE a AS SELECT * FROM {ta}")
    sandbox.rows(f"CREATE TEMP TABLE b AS SELECT * FROM {tb}")
    (rows_a,) = sandbox.one("SELECT count(*) FROM a")
    (rows_b,) = sandbox.one("SELECT count(*) FROM b")
    common = [n for n in names_a if n in sb][:MAX_COLUMNS]
    drift: list[ColumnDrift] = []
    for name in common:
        kind_a, kind_b = kind_of(sa[name]), kind_of(sb[name])
        if kind_a == "number" and kind_b == "number":
            drift.append(_numeric(sandbox, name, rows_a, rows_b))
        elif kind_a in ("text", "bool", "time") and kind_a == kind_b:
            drift.append(_categorical(sandbox, name, rows_a, rows_b))
    added = [n for n in names_b if n not in sa]
    removed = [n for n in names_a if n not in sb]
    changes = [TypeChange(column=n, a=sa[n], b=sb[n]) for n in common if sa[n] != sb[n]]
    if added or removed or changes:
        verdict: Any = "schema_changed"
    elif any(d.verdict == "major_drift" for d in drift):
        verdict = "major_drift"
    elif any(d.verdict == "minor_drift" for d in drift) or rows_a != rows_b:
        verdict = "minor_drift"
    else:
        verdict = "no_change"
    return Comparison(
        a=left.path,
        b=right.path,
        a_ref=left.ref,
        b_ref=right.ref,
        rows_a=int(rows_a),
        rows_b=int(rows_b),
        row_change=int(rows_b) - int(rows_a),
        added_columns=added,
        removed_columns=removed,
        type_changes=changes,
        drift=drift,
        verdict=verdict,
        total=len(common),
        returned=len(drift),
        note=f"{len([n for n in names_a if n in sb]) - len(common)} common columns not compared"
        if len(common) < len([n for n in names_a if n in sb])
        else None,
    )


def psi(expected: list[int], actual: list[int]) -> float:
    """Population stability index of `actual` against `expected` (counts per bin), smoothed."""
    total_e, total_a = sum(expected) or 1, sum(actual) or 1
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / total_e, EPSILON), max(a / total_a, EPSILON)
        value += (pa - pe) * math.log(pa / pe)
    return value


def _verdict(value: float) -> Verdict:
    return "stable" if value < MINOR else "minor_drift" if value < MAJOR else "major_drift"


def _numeric(sandbox: Sandbox, name: str, rows_a: int, rows_b: int) -> ColumnDrift:
    col = f"{sql_ident(name)}::DOUBLE"
    finite = f"isfinite({col})"
    quantiles = [round(i / BINS, 2) for i in range(1, BINS)]
    # The deciles of a's finite values are the bins; NaN and infinities have one bin of their own,
    # so a change in how many there are is drift too.
    (deciles,) = sandbox.one(f"SELECT quantile_cont({col}, {quantiles}) FILTER (WHERE {finite}) FROM a")
    edges = sorted({e for e in deciles or [] if math.isfinite(e)})
    inside = " + ".join(f"({col} > {sql_double(e)})::INTEGER" for e in edges) or "0"
    bucket = f"CASE WHEN {finite} THEN {inside} ELSE {len(edges) + 1} END"
    counts: list[list[int]] = []
    stats: list[tuple[int, float | None]] = []
    for side in ("a", "b"):
        hist, count, mean = sandbox.one(
            f"SELECT histogram({bucket}) FILTER (WHERE {col} IS NOT NULL), count({col}), "
            f"avg({col}) FILTER (WHERE {finite}) FROM {side}"
        )
        hist = hist or {}
        counts.append([int(hist.get(i, 0)) for i in range(len(edges) + 2)])
        stats.append((int(count), as_float(mean)))
    value = round(psi(counts[0], counts[1]), 6)
    return ColumnDrift(
        column=name,
        kind="numeric",
        psi=value,
        verdict=_verdict(value),
        null_fraction_a=_fraction(rows_a - stats[0][0], rows_a),
        null_fraction_b=_fraction(rows_b - stats[1][0], rows_b),
        mean_a=stats[0][1],
        mean_b=stats[1][1],
    )


def _categorical(sandbox: Sandbox, name: str, rows_a: int, rows_b: int) -> ColumnDrift:
    col = f"{sql_ident(name)}::VARCHAR"
    (top_a,) = sandbox.one(f"SELECT approx_top_k({col}, {TOP_CATEGORIES}) FROM a")
    (top_b,) = sandbox.one(f"SELECT approx_top_k({col}, {TOP_CATEGORIES}) FROM b")
    categories = [c for c in dict.fromkeys([*(top_a or []), *(top_b or [])]) if c is not None]
    counts: list[list[int]] = []
    nulls: list[int] = []
    for side in ("a", "b"):
        hist, count = sandbox.one(
            f"SELECT histogram(CASE WHEN list_contains($1, {col}) THEN {col} ELSE NULL END), "
            f"count({col}) FILTER (WHERE NOT list_contains($1, {col})) FROM {side}",
            [categories],
        )
        hist = hist or {}
        counts.append([int(hist.get(c, 0)) for c in categories] + [int(count)])
        (non_null,) = sandbox.one(f"SELECT count({col}) FROM {side}")
        nulls.append((rows_a if side == "a" else rows_b) - int(non_null))
    value = round(psi(counts[0], counts[1]), 6)
    return ColumnDrift(
        column=name,
        kind="categorical",
        psi=value,
        verdict=_verdict(value),
        null_fraction_a=_fraction(nulls[0], rows_a),
        null_fraction_b=_fraction(nulls[1], rows_b),
    )


def _fraction(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0
