"""profile_dataset: per-column statistics and alerts, computed in two aggregate passes.

Pass 1 is one aggregate over every column (counts, distinct, min/max, moments, quantiles, zeros,
lengths, numeric-looking text, candidate top values); pass 2 is one aggregate that needs pass 1's
numbers (histogram bins, outliers beyond the IQR fences, exact counts of the top values), with the
duplicate rows; a statement of its own groups the values of the columns whose value counts are too
many to hold (top values are exact up to EXACT_ROWS rows). Text formats are parsed once into a temporary table first, in no particular row
order and with each row's hash stored beside it (the samples and the duplicate count go by it),
unless the file is large for the memory limit: plain CSV and TSV are then read from the file in each
pass (in small buffers), as Parquet always is. A copy is cheap to read again, so there the sample's
aggregates and pass 2's histograms each get a statement of their own, which costs less in all."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from common.errors import OnrecordError
from servers.data.context import DataContext, Source
from servers.data.formats import reader
from servers.data.models import Alert, Bin, ColumnProfile, DatasetProfile, TopValue
from servers.data.params import Columns, DatasetPath, Ref
from servers.data.sandbox import Limits, Sandbox, sql_ident
from servers.data.values import as_float, json_value

MAX_COLUMNS = 200
TOP_K = 5
BINS = 10
EXACT_ROWS = 200_000  # at most this many rows: exact distinct counts, quantiles and top values
# Up to EXACT_ROWS rows every value of a column is counted (a column whose values all differ shows
# no top values, so it needs no counts): in pass 2's statement while the counts fit SAMPLE_SHARE of
# the memory limit, else grouped in a statement of DuckDB's own buffers. Top values are the most
# frequent, ties in value order, the same on every run.
# Above EXACT_ROWS, top-value candidates and quantiles come from a sample of the rows: those whose
# hash (of the whole row, so the sample is the same on every run) is divisible by `every`, at least
# one row in MIN_EVERY and about SAMPLE_ROWS rows in all, but at least MIN_SAMPLE_ROWS rows. Quantiles
# are exact over the sample, which holds its values in memory: SAMPLE_SHARE of the memory limit at
# most, or a sketch over every row (approx_quantile) when that does not hold MIN_SAMPLE_ROWS. Top
# values' candidates are the sample's most frequent values (grouped, so the same on every run) and
# their counts exact over every row (pass 2); a column with at most FEW_VALUES distinct values, or
# at most SPARSE values, gets the exact count of each of its values instead of candidates, while all
# those counts fit SAMPLE_SHARE of the memory limit (its top values are then exact).
MIN_EVERY = 8
SAMPLE_ROWS = 250_000
MIN_SAMPLE_ROWS = 50_000
SAMPLE_SHARE = 1 / 8
TOP_CANDIDATES = 2 * TOP_K
FEW_VALUES = 10_000
SPARSE = 65_536
VALUE_BYTES = 256  # what one counted value may hold, per thread (the counts live outside DuckDB's buffers)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PII_SAMPLE = 1000
PII_BOUND = 4  # rows below the hash bound of the PII sample, per sampled row (about)
STREAM_SHARE = 0.25  # a plain CSV/TSV file larger than this share of the memory limit is not copied
STREAM_BUFFER = 4 * 1024 * 1024  # bytes per CSV read buffer when streaming
SHIFT_ROWS = 1000  # rows whose median value pass 1 sums each number's powers around
NO_SPREAD = 1e-12  # a variance below this share of the mean square is rounding, not spread
GROUPING_SETS_PER_STATEMENT = 16  # more in one statement cost more than their scans (1 ms a set beyond 30)
DISTINCT_PER_STATEMENT = 16  # exact distinct counts per statement (each holds a hash table)
FAR_SHIFT = 1e6  # (mean - shift)^2 beyond this many variances: the sums lost digits, take them again
REFINE_ROUNDS = 2
# A mean's run-to-run noise, with a wide margin: the parallel sum of distances, per unit of spread
# times sqrt(rows), and the rounding of shift + distance at the mean's magnitude (a few ulps).
MEAN_NOISE = 1e4 * 2.0**-52
MEAN_ULPS = 16 * 2.0**-52

# Alert thresholds, reported with each alert.
HIGH_MISSING = 0.2
HIGH_CARDINALITY = 0.5
HIGH_CARDINALITY_MIN = 50
UNIQUE = 1.0
SKEW = 2.0
ZEROS = 0.1
IMBALANCE = 0.9
IMBALANCE_MAX_DISTINCT = 50
MIXED_LOW, MIXED_HIGH = 0.05, 0.95
OUTLIER_FENCE = 3.0  # IQRs beyond the quartiles
OUTLIERS = 0.01
PII_SHARE = 0.5

Kind = Literal["number", "text", "time", "bool", "other"]
_NUMBER = re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|REAL|DECIMAL.*|UHUGEINT)$")
_TIME = re.compile(r"^(DATE|TIME.*|TIMESTAMP.*|INTERVAL)$")
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|pk)$|Id$|ID$", re.IGNORECASE)
PII_PATTERNS: dict[str, str] = {
    "email address": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "phone number": r"^\+?[0-9][0-9 ().-]{7,}[0-9]$",
    "IP address": r"^(\d{1,3}\.){3}\d{1,3}$",
    "card number": r"^(\d[ -]?){13,19}$",
    "US SSN": r"^\d{3}-\d{2}-\d{4}$",
}
# How an alert names each kind (the article goes with the label, not with its first letter).
PII_NAMES = {
    "email address": "an email address",
    "phone number": "a phone number",
    "IP address": "an IP address",
    "card number": "a card number",
    "US SSN": "a US SSN",
}
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class ProfileError(OnrecordError):
    """The columns asked for do not exist, or the dataset cannot be profiled."""


def kind_of(duck_type: str) -> Kind:
    if _NUMBER.match(duck_type):
        return "number"
    if duck_type == "VARCHAR":
        return "text"
    if _TIME.match(duck_type):
        return "time"
    if duck_type == "BOOLEAN":
        return "bool"
    return "other"


@dataclass
class _Col:
    index: int
    name: str
    type: str
    kind: Kind
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        return sql_ident(self.name)

    @property
    def as_double(self) -> str:
        return f"{self.ident}::DOUBLE"

    @property
    def floating(self) -> bool:
        """Whether the column can hold NaN and infinities (left out of its moments, quantiles,
        histogram and outliers, and counted as `non_finite`)."""
        return self.type in ("FLOAT", "DOUBLE", "REAL")

    @property
    def finite(self) -> str:
        """A condition true for the values the number statistics take in ("" when every one)."""
        return f"isfinite({self.ident})" if self.floating else ""

    @property
    def number(self) -> str:
        """The value as a DOUBLE for the number statistics: NULL when NaN or infinite, once pass 1
        found such values (before, or without any, the plain value: a CASE in every aggregate
        would cost 5% of a profile)."""
        if self.floating and self.stats.get("non_finite"):
            return f"CASE WHEN isfinite({self.ident}) THEN {self.as_double} END"
        return self.as_double


async def profile_dataset(
    ctx: DataContext,
    path: DatasetPath,
    columns: Columns = None,
    sample_rows: Annotated[
        int | None,
        Field(
            ge=1000,
            le=100_000_000,
            description="Profile a random sample of this many rows when the dataset is larger (faster on "
            "big files; `sampled` says so); default: every row",
        ),
    ] = None,
    ref: Ref = None,
) -> DatasetProfile:
    """Profile a dataset in one call: per column the type, nulls, distinct count (exact, or marked
    approximate above 200,000 rows), min/max, mean/std, quantiles, zeros, text lengths, top values
    with counts and a histogram; duplicate rows; and alerts (constant, unique, high cardinality,
    high missing, skewed, zeros, imbalance, mixed types, outliers, identifier, PII, duplicates),
    each with the threshold it crossed. Up to 200 columns per call (pass `columns` for others)."""
    async with ctx.source(path, ref) as source:
        _, copied = _layout(source, ctx.limits.memory_mb, columns, sample_rows)
        # A copy's rows need no order: every figure is an aggregate, and the samples go by hash.
        return await ctx.run(
            [source.absolute],
            lambda sandbox: _profile(sandbox, source, columns, sample_rows),
            ordered=not copied,
        )


def _layout(
    source: Source, memory_mb: int, wanted: list[str] | None, sample_rows: int | None
) -> tuple[bool, bool]:
    """(streamed, copied): whether a plain CSV/TSV file is read from the file in each pass, in small
    buffers, because it is large for the memory limit; whether a text file is parsed once into a
    table that every pass reads (when every column is profiled, that parse also tells the columns:
    one sniff of the file, not two)."""
    streamed = (
        source.format in ("csv", "tsv")
        and not source.gzipped
        and source.size > memory_mb * 1024 * 1024 * STREAM_SHARE
    )
    copied = source.format != "parquet" and not streamed and sample_rows is None and wanted is None
    return streamed, copied


def _profile(
    sandbox: Sandbox, source: Source, wanted: list[str] | None, sample_rows: int | None
) -> DatasetProfile:
    started = time.monotonic()
    streamed, copied = _layout(source, sandbox.limits.memory_mb, wanted, sample_rows)
    table = reader(source.absolute, source.format, buffer_bytes=STREAM_BUFFER if streamed else None)
    row_hash: str | None = None
    if copied:
        # Each row's hash is stored beside it, computed while the file is parsed: pass 1 samples
        # the rows by it, pass 2 counts duplicate rows with it, the PII pass picks its rows by it.
        sandbox.rows(f"CREATE TEMP TABLE profiled AS SELECT *, hash(*COLUMNS(*)) AS row_hash FROM {table}")
    described = "profiled" if copied else table
    names, types, _, _ = sandbox.rows(f"SELECT * FROM {described} LIMIT 0", max_rows=0)
    if copied:  # the last column is the hash (DuckDB renames it when the file has a row_hash column)
        row_hash = sql_ident(names[-1])
        names, types = names[:-1], types[:-1]
    cols = _choose(names, types, wanted)
    notes: list[str] = []
    if wanted is None and len(names) > MAX_COLUMNS:
        notes.append(f"{len(names) - MAX_COLUMNS} more columns not profiled; pass `columns` to choose")
    selected = ", ".join(c.ident for c in cols) or "*"
    rows: int | None = None
    if sample_rows is not None:
        rows = int(sandbox.one(f"SELECT count(*) FROM {table}")[0])
    sampled = rows is not None and sample_rows is not None and rows > sample_rows
    relation = "profiled"
    if sampled:
        sandbox.rows(
            f"CREATE TEMP TABLE profiled AS SELECT {selected} FROM {table} "
            f"USING SAMPLE reservoir({int(sample_rows or 0)} ROWS) REPEATABLE (7)"
        )
    elif source.format == "parquet" or streamed:
        relation = f"(SELECT {selected} FROM {table})"
    elif not copied:
        # The hash of the whole row, as for a copy of every column: a sample by a hash of only the
        # columns asked for would take or leave all the rows that repeat their values together.
        row_hash = sql_ident(_fresh_name("row_hash", [c.name for c in cols]))
        sandbox.rows(
            f"CREATE TEMP TABLE profiled AS SELECT {selected}, hash(*COLUMNS(*)) AS {row_hash} FROM {table}"
        )
    profiled_rows = _first_pass(sandbox, relation, cols, row_hash)
    if rows is None:
        rows = profiled_rows
    large = source.size > sandbox.limits.memory_mb * 1024 * 1024 * STREAM_SHARE
    duplicates = _second_pass(sandbox, relation, cols, profiled_rows, apart=large, row_hash=row_hash)
    _pii_pass(sandbox, relation, cols, row_hash, profiled_rows)
    profiles = [_column_profile(c, profiled_rows, exact=profiled_rows <= EXACT_ROWS) for c in cols]
    # Duplicates are of whole rows, except where the rows were read with only the columns asked for.
    whole = row_hash is not None or len(cols) == len(names)
    alerts = _alerts(cols, profiles, profiled_rows, duplicates, whole_rows=whole)
    if not whole:
        notes.append("duplicate_rows counts rows that repeat an earlier row in the profiled columns")
    if sampled:
        notes.append(f"statistics from a random sample of {profiled_rows} of {rows} rows")
    return DatasetProfile(
        path=source.path,
        ref=source.ref,
        format=source.format,
        rows=int(rows),
        profiled_rows=profiled_rows,
        sampled=sampled,
        duplicate_rows=duplicates,
        columns=profiles,
        alerts=alerts,
        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        total=len(names),
        returned=len(cols),
        truncated=len(cols) < len(names) and wanted is None,
        note="; ".join(notes) or None,
    )


def _choose(names: list[str], types: list[str], wanted: list[str] | None) -> list[_Col]:
    if wanted is not None:
        missing = [w for w in wanted if w not in names]
        if missing:
            shown = ", ".join(repr(n) for n in names[:50])
            raise ProfileError(f"no column {missing[0]!r} in this dataset; its columns are: {shown}")
        picked = [names.index(w) for w in dict.fromkeys(wanted)]
    else:
        picked = list(range(min(len(names), MAX_COLUMNS)))
    return [_Col(i, names[i], types[i], kind_of(types[i])) for i in picked]


# ---------------------------------------------------------------------------------------- passes


def _first_pass(sandbox: Sandbox, relation: str, cols: list[_Col], row_hash: str | None = None) -> int:
    """Pass 1; `row_hash` names the relation's column of row hashes, when it has one (the sample's
    aggregates then read only the sample's rows, in a statement of their own)."""
    exprs: list[str] = ["count(*)"]
    keys: list[tuple[_Col, str]] = []
    sample_exprs: list[str] = []
    sample_keys: list[tuple[_Col, str]] = []

    def add(col: _Col, key: str, expr: str) -> None:
        exprs.append(expr)
        keys.append((col, key))

    (rows,) = sandbox.one(f"SELECT count(*) FROM {relation}")
    exact = rows <= EXACT_ROWS
    shifts = _shifts(sandbox, relation, cols)
    stored = row_hash is not None
    row_hash = row_hash or sql_ident(_fresh_name("row_hash", [c.name for c in cols]))
    every, sample = 1, False
    if not exact:
        numbers = sum(c.kind == "number" for c in cols)
        every, sample = _sample_plan(rows, numbers, sandbox.limits.memory_mb, sandbox.limits.duckdb_threads)
    in_sample = "" if stored else f"{row_hash} % {every} = 0"

    def add_sampled(col: _Col, key: str, expr: str) -> None:
        if exact:
            add(col, key, _filtered(expr, col.finite))
        elif stored:
            sample_exprs.append(_filtered(expr, col.finite))
            sample_keys.append((col, key))
        else:
            add(col, key, _filtered(expr, col.finite, in_sample))

    # Each exact distinct count holds a hash table of its own (about 5 MB before any row): beyond
    # DISTINCT_PER_STATEMENT of them, they go in statements of their own, that many at a time.
    distincts = [c for c in cols if c.kind != "other"]
    apart = exact and len(distincts) > DISTINCT_PER_STATEMENT
    for c in cols:
        add(c, "count", f"count({c.ident})")
        if c.kind != "other" and not apart:
            distinct = f"count(DISTINCT {c.ident})" if exact else f"approx_count_distinct({c.ident})"
            add(c, "distinct", distinct)
        if c.kind in ("number", "time", "text"):
            add(c, "min", f"min({c.ident})")
            add(c, "max", f"max({c.ident})")
        if c.kind == "number":
            x = c.as_double
            for key, expr in _sums(c, shifts.get(c.index, 0.0)):
                add(c, key, expr)
            if c.floating:
                add(c, "non_finite", f"count_if(NOT isfinite({c.ident}))")
            if exact or sample:
                add_sampled(c, "quantiles", f"quantile_cont({x}, {list(QUANTILES)})")
            else:
                add(c, "quantiles", _filtered(f"approx_quantile({x}, {list(QUANTILES)})", c.finite))
            add(c, "zeros", f"count_if({c.ident} = 0)")
            add(c, "negatives", f"count_if({c.ident} < 0)")
        elif c.kind == "text":
            add(c, "min_length", f"min(length({c.ident}))")
            add(c, "max_length", f"max(length({c.ident}))")
            add(c, "mean_length", f"avg(length({c.ident}))")
            add(c, "numeric_text", f"count({_as_number(c.ident)})")
        elif c.kind == "bool":
            add(c, "trues", f"count_if({c.ident})")
    source = relation
    if cols and not exact and not stored:
        fields = ", ".join(c.ident for c in cols)
        source = f"(SELECT {fields}, hash({fields}) AS {row_hash} FROM {relation})"
    row = sandbox.one(f"SELECT {', '.join(exprs)} FROM {source}")
    for (col, key), value in zip(keys, row[1:], strict=True):
        col.stats[key] = value
    if apart:
        for start in range(0, len(distincts), DISTINCT_PER_STATEMENT):
            chunk = distincts[start : start + DISTINCT_PER_STATEMENT]
            counts = sandbox.one(
                f"SELECT {', '.join(f'count(DISTINCT {c.ident})' for c in chunk)} FROM {relation}"
            )
            for c, value in zip(chunk, counts, strict=True):
                c.stats["distinct"] = value
    _refine_moments(sandbox, relation, cols, shifts)
    _choose_counted(cols, int(row[0]), sandbox.limits)
    if not exact:  # a column whose every value pass 2 counts needs no candidates for its top values
        wanting = [c for c in cols if c.stats.get("distinct") is not None and not c.stats.get("counted")]
        sample = f"{relation} WHERE {row_hash} % {every} = 0"
        if wanting and not stored:
            fields = ", ".join(c.ident for c in cols)
            hashed = f"SELECT {fields}, hash({fields}) AS {row_hash} FROM {relation}"
            sample = f"({hashed}) WHERE {row_hash} % {every} = 0"
        _grouped_pass(sandbox, sample, wanting, key="top", limit=TOP_CANDIDATES, materialize=not stored)
    if sample_exprs:
        where = f"WHERE {row_hash} % {every} = 0"
        values = sandbox.one(f"SELECT {', '.join(sample_exprs)} FROM {relation} {where}")
        for (col, key), value in zip(sample_keys, values, strict=True):
            col.stats[key] = value
    return int(row[0])


def _shifts(sandbox: Sandbox, relation: str, cols: list[_Col]) -> dict[int, float]:
    """A typical value of each number column (the median of its first SHIFT_ROWS rows' finite
    values): pass 1 sums the powers of each value's distance from it, from which the mean, the
    standard deviation and the skewness follow without losing their digits to a large offset (and
    at a third of the CPU of avg(), stddev_samp() and skewness(), whose sums of powers of the raw
    values lose them)."""
    numbers = [c for c in cols if c.kind == "number"]
    if not numbers:
        return {}
    fields = ", ".join(c.as_double for c in numbers)
    _, _, first, _ = sandbox.rows(f"SELECT {fields} FROM {relation} LIMIT {SHIFT_ROWS}")
    shifts: dict[int, float] = {}
    for i, c in enumerate(numbers):
        values = sorted(v for row in first if (v := as_float(row[i])) is not None)
        if values:
            shifts[c.index] = values[len(values) // 2]
    return shifts


def _sums(c: _Col, shift: float) -> list[tuple[str, str]]:
    """Pass 1's aggregates of a number column's moments: how many values they take in (the
    finite ones) and the sums of the first three powers of those values' distances from `shift`."""
    x = c.number
    d = f"({x} - {sql_double(shift)})" if shift else x
    return [
        ("n", f"count({x})"),
        ("s1", f"sum({d})"),
        ("s2", f"sum({d} * {d})"),
        ("s3", f"sum({d} * {d} * {d})"),
    ]


def _refine_moments(sandbox: Sandbox, relation: str, cols: list[_Col], shifts: dict[int, float]) -> None:
    """Each number column's mean, std and skewness from pass 1's sums, and, for a column whose
    shift lay too far from its values for those sums to keep their digits (its first rows held no
    finite value, or were far from the rest), the sums again around the mean they gave, in one
    statement for all such columns (at most twice: the second mean is exact)."""
    numbers = [c for c in cols if c.kind == "number"]
    for round_ in range(REFINE_ROUNDS + 1):
        again: list[_Col] = []
        for c in numbers:
            if round_ == 0 and c.stats.get("non_finite"):
                again.append(c)  # pass 1's sums took NaN and infinities in: take them over the rest
                continue
            shift = shifts.get(c.index, 0.0)
            c.stats.update(_moments(int(c.stats.get("n") or 0), shift, c.stats))
            mean, std = c.stats["mean"], c.stats["std"]
            if mean is not None and std is not None and (mean - shift) ** 2 > FAR_SHIFT * std**2:
                shifts[c.index] = mean
                again.append(c)
        if not again or round_ == REFINE_ROUNDS:
            return
        exprs = [(c, key, expr) for c in again for key, expr in _sums(c, shifts[c.index])]
        row = sandbox.one(f"SELECT {', '.join(e for _, _, e in exprs)} FROM {relation}")
        for (c, key, _), value in zip(exprs, row, strict=True):
            c.stats[key] = value
        numbers = again


def sql_double(value: float) -> str:
    """A DOUBLE as SQL: its repr (which reads back exactly), or a cast for an infinity or NaN,
    which a figure derived from the largest doubles can become (a bare `inf` is a column name)."""
    return f"{value!r}::DOUBLE" if math.isfinite(value) else f"'{value}'::DOUBLE"


def _filtered(aggregate: str, *conditions: str) -> str:
    """`aggregate` taking in only the rows where every one of `conditions` holds (empty: none)."""
    where = " AND ".join(c for c in conditions if c)
    return f"{aggregate} FILTER (WHERE {where})" if where else aggregate


def _moments(n: int, shift: float, stats: dict[str, Any]) -> dict[str, float | None]:
    """The mean, sample standard deviation and sample skewness (as DuckDB's skewness() defines it)
    of `n` values from the sums of the first three powers of their distances from `shift`
    (stats s1, s2, s3); None where undefined (too few values, no spread, a sum beyond a double)."""
    s1, s2, s3 = (as_float(stats.get(k)) for k in ("s1", "s2", "s3"))
    out: dict[str, float | None] = {"mean": None, "std": None, "skew": None}
    if n < 1 or s1 is None:
        return out
    out["mean"] = shift + s1 / n
    if n < 2 or s2 is None:
        return out
    m2 = max(0.0, s2 / n - (s1 / n) ** 2)  # the population variance
    out["std"] = math.sqrt(m2 * n / (n - 1))
    if n < 3 or s3 is None or m2 <= NO_SPREAD * (s2 / n):  # no spread, or none the digits can tell
        return out
    m3 = s3 / n - 3 * (s1 / n) * (s2 / n) + 2 * (s1 / n) ** 3
    skew = math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5
    out["skew"] = skew if math.isfinite(skew) else None
    return out


# One aggregate of pass 2: its expression, its column (None: the distinct rows), what it counts and
# the candidate top value it counts.
_Counted = tuple[str, _Col | None, str, Any]


def _choose_counted(cols: list[_Col], rows: int, limits: Limits) -> None:
    """Mark the columns whose every value pass 2 counts exactly: stats["counted"], in pass 2's
    statement (histogram), while their counts fit SAMPLE_SHARE of the memory limit; above
    EXACT_ROWS only those with few distinct values or few values. Up to EXACT_ROWS the columns that
    do not fit are marked stats["grouped"]: their values are grouped in a statement of their own.
    A column whose (exact) distinct values are as many as its values shows no top values: no counts."""
    room = int(limits.memory_mb * 1024 * 1024 * SAMPLE_SHARE) // (VALUE_BYTES * limits.duckdb_threads)
    exact = rows <= EXACT_ROWS
    for c in cols:
        distinct, count = c.stats.get("distinct"), int(c.stats.get("count") or 0)
        if distinct is None or (exact and distinct >= count):
            continue
        values = min(int(distinct), count)
        if (exact or distinct <= FEW_VALUES or count <= SPARSE) and values <= room:
            room -= values
            c.stats["counted"] = True
        elif exact:
            c.stats["grouped"] = True


def _sample_plan(rows: int, numbers: int, memory_mb: int, threads: int) -> tuple[int, bool]:
    """(every, whether quantiles come from the sample): the sample is the rows whose hash is
    divisible by `every`."""
    every = max(MIN_EVERY, -(-rows // SAMPLE_ROWS))
    if rows // every < MIN_SAMPLE_ROWS:  # a denser sample, rather than approx_quantile's sketch
        every = max(1, rows // MIN_SAMPLE_ROWS)
    held = (rows // every) * 8 * max(numbers, 1) * max(threads, 1)  # one DOUBLE per value, per thread
    return every, held <= memory_mb * 1024 * 1024 * SAMPLE_SHARE and rows // every >= MIN_SAMPLE_ROWS


def _as_number(ident: str) -> str:
    """The text value as a DOUBLE, or NULL. Only text starting with whitespace, a sign, a digit, a
    dot (all below ':'), `inf` or `nan` can cast, so the cast (the costly part) runs only on those;
    comparing the text's bytes tells them apart at less cost than reading its first character
    (1M rows, three columns: 0.06 s of CPU against 0.08 s with ascii())."""
    starts = " OR ".join(f"({ident} >= '{c}' AND {ident} < '{chr(ord(c) + 1)}')" for c in "INin")
    return f"CASE WHEN {ident} < ':' OR {starts} THEN TRY_CAST({ident} AS DOUBLE) END"


def _fresh_name(base: str, taken: list[str]) -> str:
    name = base
    while name in taken:
        name = "_" + name
    return name


def _second_pass(
    sandbox: Sandbox,
    relation: str,
    cols: list[_Col],
    rows: int,
    *,
    apart: bool = False,
    row_hash: str | None = None,
) -> int | None:
    """Pass 2; returns the number of duplicate rows (None when there are rows but no columns),
    counted in a statement of their own when `apart` (a dataset large for the memory limit), from
    the relation's column of row hashes `row_hash` when it has one. Such a relation is a table,
    cheap to read twice: the value counts (histogram bins, every value of a counted column) are
    then grouped in a statement of their own, one grouping set each, which costs less than the
    same counts as histogram() aggregates beside pass 2's (1M rows, 9 counts: 0.12 s of CPU against
    0.14 s alone, 0.25-0.3 s together)."""
    main: list[_Counted] = []
    counted: list[tuple[str, _Col, str]] = []  # (the value counted, its column, the stats key)
    params: list[Any] = []
    _finite_range(sandbox, relation, cols)
    for c in cols:
        lo, hi = as_float(c.stats.get("low")), as_float(c.stats.get("high"))
        if c.kind == "number" and lo is not None and hi is not None and hi > lo:
            width = (hi - lo) / BINS
            if not math.isfinite(width):  # values near the largest double: hi - lo overflows
                width = hi / BINS - lo / BINS
            c.stats["bins"] = (lo, width)
            # least() skips NULLs (it would put every missing value in the last bin): keep them NULL,
            # and NaN and infinities with them (c.number).
            x = c.number
            bucket = f"least(floor(({x} - {sql_double(lo)}) / {sql_double(width)}), {BINS - 1})::INTEGER"
            counted.append((f"CASE WHEN {x} IS NOT NULL THEN {bucket} END", c, "histogram"))
            q = c.stats.get("quantiles") or []
            if len(q) == len(QUANTILES) and None not in q:
                iqr = q[3] - q[1]
                low, high = q[1] - OUTLIER_FENCE * iqr, q[3] + OUTLIER_FENCE * iqr
                fences = f"{x} < {sql_double(low)} OR {x} > {sql_double(high)}"
                main.append((f"count_if({fences})", c, "outliers", None))
            else:  # no value fell in the sample, so there are few: take them all
                main.append((f"quantile_cont({x}, {list(QUANTILES)})", c, "quantiles", None))
        if c.stats.get("counted"):
            counted.append((c.ident, c, "value_counts"))
            continue
        for value in (c.stats.get("top") or [])[:TOP_CANDIDATES]:
            if value is None:
                continue
            params.append(value)
            main.append((f"count_if({c.ident} = ${len(params)})", c, "top_count", value))
    if row_hash is None:  # a file: every count in the one statement that reads it
        main += [(f"histogram({value})", c, key, None) for value, c, key in counted]
        counted = []
    # Duplicate rows here, not in pass 1: alone with its hash table, the distinct count spills far
    # less when memory is short (10M rows, 96 MB: 2.9 s in pass 2 against 5.0 s in pass 1).
    duplicates = None
    if cols and rows:
        fields = ", ".join(c.ident for c in cols)
        distinct = f"count(DISTINCT {row_hash or f'hash({fields})'})"
        if apart:  # its hash table alone then gets all of DuckDB's memory (10M rows in 48 MB)
            duplicates = rows - int(sandbox.one(f"SELECT {distinct} FROM {relation}")[0])
        else:
            main.append((distinct, None, "distinct_rows", None))
    if main:
        row = sandbox.one(f"SELECT {', '.join(i[0] for i in main)} FROM {relation}", params or None)
        for (_, col, key, value), result in zip(main, row, strict=True):
            if col is None:
                duplicates = rows - int(result)
            elif key == "top_count":
                col.stats.setdefault("top_counts", []).append((value, int(result)))
            else:
                _store_counts(col, key, result)
    _grouping_sets(sandbox, relation, counted)
    grouped = [c for c in cols if c.stats.get("grouped")]
    _grouped_pass(sandbox, relation, grouped, materialize=relation != "profiled")
    if duplicates is None and (rows == 0 or not cols):
        return 0 if not rows else None
    return duplicates if duplicates is not None else 0


def _finite_range(sandbox: Sandbox, relation: str, cols: list[_Col]) -> None:
    """stats low and high: the least and greatest finite value of each number column, which the
    histogram's bins span: its min and max, unless NaN or an infinity (then one statement for
    every such column)."""
    odd: list[_Col] = []
    for c in cols:
        if c.kind != "number":
            continue
        c.stats["low"], c.stats["high"] = c.stats.get("min"), c.stats.get("max")
        if c.stats.get("non_finite"):
            odd.append(c)
    if odd:
        row = sandbox.one(
            f"SELECT {', '.join(f'min({c.number}), max({c.number})' for c in odd)} FROM {relation}"
        )
        for i, c in enumerate(odd):
            c.stats["low"], c.stats["high"] = row[2 * i], row[2 * i + 1]


def _store_counts(col: _Col, key: str, result: Any) -> None:
    """A result of pass 2 for `col`: its value counts as a map (of histogram bins, or of every
    value), or a figure."""
    if key == "value_counts":
        counts = [(v, int(n)) for v, n in (result or {}).items() if v is not None]
        col.stats["top_counts"] = sorted(counts, key=_rank)[:TOP_K]
    else:
        col.stats[key] = result


def _grouping_sets(sandbox: Sandbox, relation: str, counted: list[tuple[str, _Col, str]]) -> None:
    """The count of each value of each of `counted`, one grouping set per value counted, told apart
    by grouping_id(); GROUPING_SETS_PER_STATEMENT sets to a statement (each set holds a hash table,
    and many in one statement cost more than the scans they save)."""
    for start in range(0, len(counted), GROUPING_SETS_PER_STATEMENT):
        chunk = counted[start : start + GROUPING_SETS_PER_STATEMENT]
        keys = [f"k{i}" for i in range(len(chunk))]
        picked = ", ".join(f"{value} AS {k}" for (value, _, _), k in zip(chunk, keys, strict=True))
        sets = ", ".join(f"({k})" for k in keys)
        _, _, result, _ = sandbox.rows(
            f"SELECT grouping_id({', '.join(keys)}), {', '.join(keys)}, count(*) "
            f"FROM (SELECT {picked} FROM {relation}) GROUP BY GROUPING SETS ({sets})"
        )
        maps: list[dict[Any, int]] = [{} for _ in chunk]
        width = len(chunk)
        for row in result:
            # The one key a row's set groups is the one zero bit (the first key is the highest).
            grouped = ~int(row[0]) & ((1 << width) - 1)
            i = width - grouped.bit_length()
            if grouped and row[1 + i] is not None:
                maps[i][row[1 + i]] = int(row[-1])
        for (_, col, key), values in zip(chunk, maps, strict=True):
            _store_counts(col, key, values)


def _grouped_pass(
    sandbox: Sandbox,
    relation: str,
    cols: list[_Col],
    *,
    key: str = "top_counts",
    limit: int = TOP_K,
    materialize: bool = False,
) -> None:
    """The `limit` most frequent values of each of `cols` in `relation` and their counts, ties in
    value order, from its values grouped in DuckDB's buffers (which spill), in one statement:
    stats[key], as (value, count) pairs, or, for
    "top", the sample's candidates that pass 2 counts over every row. Exact, so the same on every
    run, where approx_top_k's sketch depends on how the rows fall to threads. A relation costly to
    read (a file, rows hashed) is read once when `materialize`; a table is cheaper read per column
    (1M rows, 2 columns: about 0.01 s of CPU less)."""
    if not cols:
        return
    picked = ", ".join(f"{c.ident} AS v{c.index}" for c in cols)
    exprs = [
        f"(SELECT list({{'v': v, 'n': n}} ORDER BY n DESC, v) FROM (SELECT v{c.index} AS v, count(*) AS n "
        f"FROM picked WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {limit}))"
        for c in cols
    ]
    how = "MATERIALIZED" if materialize else "NOT MATERIALIZED"
    row = sandbox.one(f"WITH picked AS {how} (SELECT {picked} FROM {relation}) SELECT {', '.join(exprs)}")
    for c, result in zip(cols, row, strict=True):
        counts = [(item["v"], int(item["n"])) for item in result or []]
        c.stats[key] = [v for v, _ in counts] if key == "top" else counts


def _rank(value_count: tuple[Any, int]) -> tuple[int, bool, Any]:
    """Sort key of a value and its count: most frequent first, ties in value order (NaN last, as
    DuckDB orders it)."""
    value, count = value_count
    nan = isinstance(value, float) and value != value
    return -count, nan, 0.0 if nan else value


def _pii_pass(
    sandbox: Sandbox, relation: str, cols: list[_Col], row_hash: str | None = None, rows: int = 0
) -> None:
    """The share of a sample of each text column's values that look like personal data or ids: the
    first rows, or the rows of least hash when the relation of `rows` rows has a column of row
    hashes `row_hash` (its rows have no order then)."""
    texts = [c for c in cols if c.kind == "text" and c.stats.get("count")]
    if not texts:
        return
    exprs: list[str] = ["count(*)"]
    keys: list[tuple[_Col, str]] = []
    for c in texts:
        for label, pattern in {**PII_PATTERNS, "uuid": UUID_PATTERN}.items():
            literal = "'" + pattern.replace("'", "''") + "'"
            exprs.append(f"avg(regexp_full_match(v{c.index}, {literal})::INTEGER)")
            keys.append((c, label))
    inner = ", ".join(f"{c.ident} AS v{c.index}" for c in texts)
    sample = f"SELECT {inner} FROM {relation} LIMIT {PII_SAMPLE}"
    bounded = None
    if row_hash:
        sample = f"SELECT {inner} FROM {relation} ORDER BY {row_hash} LIMIT {PII_SAMPLE}"
        if rows > PII_BOUND * PII_SAMPLE:
            # Hashes are uniform, so about PII_BOUND * PII_SAMPLE rows lie below this bound and the
            # least hashes are among them; sorting those few costs less than a top-N of every row.
            bound = (2**64 * PII_BOUND * PII_SAMPLE) // rows
            bounded = f"SELECT {inner} FROM {relation} WHERE {row_hash} < {bound} ORDER BY {row_hash} LIMIT {PII_SAMPLE}"
    row = sandbox.one(f"SELECT {', '.join(exprs)} FROM ({bounded or sample})")
    if bounded and row[0] < PII_SAMPLE:  # many rows repeat: too few distinct hashes below the bound
        row = sandbox.one(f"SELECT {', '.join(exprs)} FROM ({sample})")
    for (col, label), share in zip(keys, row[1:], strict=True):
        if share is not None:
            col.stats.setdefault("patterns", {})[label] = float(share)


# --------------------------------------------------------------------------------------- results


def _column_profile(c: _Col, rows: int, *, exact: bool) -> ColumnProfile:
    s = c.stats
    count = int(s.get("count") or 0)
    nulls = rows - count
    quantiles = None
    values = [as_float(v) for v in s.get("quantiles") or []]
    if values and None not in values:
        quantiles = {
            f"p{round(q * 100):02d}": v for q, v in zip(QUANTILES, values, strict=True) if v is not None
        }
    histogram: list[Bin] = []
    if "bins" in s and s.get("histogram"):
        lo, width = s["bins"]
        counts = {int(k): int(v) for k, v in s["histogram"].items() if k is not None}
        histogram = [
            Bin(
                low=_edge(_edge_at(lo, width, i), width),
                high=_edge(_edge_at(lo, width, i + 1), width),
                count=counts.get(i, 0),
            )
            for i in range(BINS)
        ]
    top = sorted(s.get("top_counts", []), key=_rank)[:TOP_K]
    if s.get("distinct") is not None and s["distinct"] >= count:
        top = []  # every value is different: any five of them say nothing
    return ColumnProfile(
        name=c.name,
        type=c.type,
        count=count,
        nulls=nulls,
        null_fraction=round(nulls / rows, 6) if rows else 0.0,
        # An estimate can exceed the values it counts: never more distinct values than values.
        distinct=min(int(s["distinct"]), count) if s.get("distinct") is not None else None,
        distinct_approximate=not exact and s.get("distinct") is not None,
        min=json_value(s.get("min")),
        max=json_value(s.get("max")),
        mean=_stable_mean(s.get("mean"), s.get("std"), int(s.get("n") or 0)),
        std=_stable(s.get("std")),
        quantiles=quantiles,
        zeros=_int(s.get("zeros")),
        negatives=_int(s.get("negatives")),
        min_length=_int(s.get("min_length")),
        max_length=_int(s.get("max_length")),
        mean_length=_stable(s.get("mean_length")),
        numeric_text=_int(s.get("numeric_text")),
        non_finite=_int(s.get("non_finite")) if c.floating else None,
        top_values=[TopValue(value=json_value(v, 120), count=n) for v, n in top if n > 0],
        # Above EXACT_ROWS a column not counted whole has sampled candidates (or, its values seeming
        # all different, none).
        top_values_approximate=not exact and s.get("distinct") is not None and not s.get("counted"),
        histogram=histogram,
    )


def _edge_at(lo: float, width: float, k: int) -> float:
    """The k-th bin edge, lo + k * width, also where k * width overflows a double (bins of values
    near the largest double): as lo's and the top edge's shares, each finite."""
    edge = lo + k * width
    return edge if math.isfinite(edge) else lo / BINS * (BINS - k) + (lo / BINS + width) * k


def _rounded(value: float, quantum: float) -> float:
    """`value` to the power of ten at or below `quantum` (at most 17 significant digits)."""
    if value == 0 or not quantum > 0 or not math.isfinite(value):
        return value
    digits = math.floor(math.log10(abs(value))) - math.floor(math.log10(quantum)) + 1
    return float(f"{value:.{max(1, min(17, digits))}g}")


def _twelve(value: float) -> float:
    """The quantum of `value`'s twelfth significant digit."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 11) if value else 0.0


def _edge(value: float, width: float) -> float:
    """A bin edge to 12 significant digits, or finer when the bins are narrow for their place
    (values near 10^15 a few units apart), so neighbouring edges stay apart."""
    return _rounded(value, min(_twelve(value), abs(width) * 1e-9) if width else _twelve(value))


def _stable(value: Any) -> float | None:
    """A float that DuckDB sums in parallel, rounded to 12 significant digits: the order in which
    threads add their parts changes only the last digits, so the figure is the same on every run."""
    number = as_float(value)  # None unless finite
    return None if number is None else _rounded(number, _twelve(number))


def _stable_mean(mean: Any, std: Any, n: int) -> float | None:
    """The mean like `_stable`, or to a finer digit when 12 significant digits hide its spread (a
    mean near 10^15 of values a few units apart): as fine as its run-to-run noise allows."""
    number, spread = as_float(mean), as_float(std) or 0.0
    if number is None:
        return None
    noise = MEAN_NOISE * math.sqrt(max(n, 1)) * spread + MEAN_ULPS * abs(number)
    return _rounded(number, min(_twelve(number), noise) if number else noise)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _alerts(
    cols: list[_Col],
    profiles: list[ColumnProfile],
    rows: int,
    duplicates: int | None,
    *,
    whole_rows: bool = True,
) -> list[Alert]:
    alerts: list[Alert] = []
    if rows == 0:
        return [Alert(kind="empty", message="the dataset has no rows")]
    if duplicates:
        alerts.append(
            Alert(
                kind="duplicates",
                message=f"{duplicates} rows repeat an earlier row "
                + ("exactly" if whole_rows else "in the profiled columns"),
                value=duplicates,
                threshold=0,
            )
        )
    for c, p in zip(cols, profiles, strict=True):
        alerts += _column_alerts(c, p, rows)
    return alerts


def _column_alerts(c: _Col, p: ColumnProfile, rows: int) -> list[Alert]:
    out: list[Alert] = []

    def alert(kind: Any, message: str, value: float | None = None, threshold: float | None = None) -> None:
        out.append(Alert(column=p.name, kind=kind, message=message, value=value, threshold=threshold))

    if p.null_fraction >= HIGH_MISSING:
        alert("high_missing", f"{p.null_fraction:.0%} of values are missing", p.null_fraction, HIGH_MISSING)
    if p.non_finite:
        alert(
            "non_finite",
            f"{p.non_finite} values are NaN or infinite (left out of the statistics)",
            round(p.non_finite / p.count, 4),
            0,
        )
    if p.count == 0 or p.distinct is None:
        return out
    if p.count < 2:  # one value is neither constant nor unique in any sense worth an alert
        return out
    distinct_share = p.distinct / p.count
    if p.distinct == 1:
        alert(
            "constant",
            f"every non-null value is {p.top_values[0].value!r}" if p.top_values else "one value",
            1,
            1,
        )
        return out
    unique = p.distinct >= p.count if not p.distinct_approximate else distinct_share >= 0.99
    if unique:
        alert(
            "unique",
            "every value is different" + (" (approximately)" if p.distinct_approximate else ""),
            round(distinct_share, 4),
            UNIQUE,
        )
        if c.kind in ("number", "text") and (
            _ID_NAME.search(p.name) or c.stats.get("patterns", {}).get("uuid", 0) >= PII_SHARE
        ):
            alert(
                "identifier",
                "unique values in an id-like column: likely a key, not a feature",
                round(distinct_share, 4),
                UNIQUE,
            )
    elif c.kind == "text" and distinct_share >= HIGH_CARDINALITY and p.distinct >= HIGH_CARDINALITY_MIN:
        alert(
            "high_cardinality",
            f"{p.distinct} distinct values in {p.count}",
            round(distinct_share, 4),
            HIGH_CARDINALITY,
        )
    if c.kind == "number":
        skew = _stable(c.stats.get("skew"))
        if skew is not None and abs(skew) > SKEW:
            alert("skewed", f"skewness {skew:.2f}", round(skew, 4), SKEW)
        if p.zeros and p.zeros / p.count >= ZEROS:
            alert("zeros", f"{p.zeros / p.count:.0%} of values are zero", round(p.zeros / p.count, 4), ZEROS)
        outliers = _int(c.stats.get("outliers"))
        if outliers and outliers / p.count >= OUTLIERS:
            alert(
                "outliers",
                f"{outliers} values lie more than {OUTLIER_FENCE:g} IQRs beyond the quartiles",
                round(outliers / p.count, 4),
                OUTLIERS,
            )
    if p.top_values and 2 <= p.distinct <= IMBALANCE_MAX_DISTINCT:
        share = p.top_values[0].count / p.count
        if share >= IMBALANCE:
            alert(
                "imbalance", f"{p.top_values[0].value!r} is {share:.0%} of values", round(share, 4), IMBALANCE
            )
    if c.kind == "text" and p.numeric_text is not None:
        share = p.numeric_text / p.count
        if MIXED_LOW <= share <= MIXED_HIGH:
            alert(
                "mixed_types",
                f"{share:.0%} of values read as numbers, the rest as text",
                round(share, 4),
                MIXED_LOW,
            )
        for label, share in c.stats.get("patterns", {}).items():
            if label != "uuid" and share >= PII_SHARE:
                alert(
                    "pii",
                    f"{share:.0%} of sampled values look like {PII_NAMES[label]}",
                    round(share, 4),
                    PII_SHARE,
                )
                break
    return out
