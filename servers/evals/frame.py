"""A prediction file in a locked-down duckdb: one file readable, nothing else, configuration locked.

`open_locked` makes a fresh in-memory connection that may read exactly the files it is given:
`allowed_paths` is set to them, then external access is switched off (which keeps only those
paths), then the configuration is locked, so no query can widen it. Extensions are neither
installed nor loaded on demand. `load` reads the file into a table `base(i, id, y, yhat, s, g)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import OnrecordError
from servers.evals.metrics import Task

if TYPE_CHECKING:
    import duckdb

MAX_CLASSES = 1000
MAX_SLICES = 200
READERS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
    ".json": "read_json",
}


class EvalsError(OnrecordError):
    """The evaluation cannot be made as asked: a column is missing, a value does not fit the task."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_locked(paths: Sequence[Path], *, threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory duckdb that can read `paths` and nothing else."""
    import duckdb

    con = duckdb.connect(
        ":memory:",
        config={
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "threads": threads,
        },
    )
    listed = ", ".join(quote_literal(str(p)) for p in paths)
    con.execute(f"SET allowed_paths = [{listed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def reader(path: Path) -> str:
    """The table function call that reads `path`, chosen by its extension."""
    fn = READERS.get(path.suffix.lower())
    if fn is None:
        raise EvalsError(
            f"{path.name!r} is not a prediction file this server reads; use .csv, .tsv, .parquet, .jsonl or .json"
        )
    return f"{fn}({quote_literal(str(path))})"


@dataclass
class Columns:
    """What the caller named in the file: the columns, and how labels become classes."""

    label: str
    prediction: str | None = None
    score: str | None = None
    slice_by: str | None = None
    item_id: str | None = None
    group: str | None = None
    positive_label: str | None = None
    threshold: float = 0.5


@dataclass
class Loaded:
    """The base table's shape after loading."""

    rows: int
    used: int
    dropped: int
    has_score: bool
    positive: str | None = None
    notes: list[str] = field(default_factory=list)


def columns_of(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}


def _need(available: dict[str, str], name: str | None, what: str) -> None:
    if name is not None and name not in available:
        shown = ", ".join(repr(c) for c in list(available)[:50])
        raise EvalsError(f"{what} column {name!r} is not in the file; its columns are: {shown}")


def load(con: duckdb.DuckDBPyConnection, path: Path, task: Task, cols: Columns) -> Loaded:
    """Read the file into `base(i, id, y, yhat, s, g)`; rows missing a needed value are dropped."""
    source = reader(path)
    try:
        available = columns_of(con, source)
    except Exception as exc:  # duckdb's parse and IO errors have no common base worth naming
        raise EvalsError(f"cannot read {path.name!r}: {str(exc).splitlines()[0]}") from exc
    for name, what in (
        (cols.label, "label"),
        (cols.prediction, "prediction"),
        (cols.score, "score"),
        (cols.slice_by, "slice_by"),
        (cols.item_id, "item_id"),
        (cols.group, "group"),
    ):
        _need(available, name, what)
    q = quote_ident
    score = f"TRY_CAST({q(cols.score)} AS DOUBLE)" if cols.score else "CAST(NULL AS DOUBLE)"
    ident = (
        f"CAST({q(cols.item_id)} AS VARCHAR)" if cols.item_id else "CAST(row_number() OVER () - 1 AS VARCHAR)"
    )
    group = f"CAST({q(cols.group)} AS VARCHAR)" if cols.group else "CAST(NULL AS VARCHAR)"
    slice_ = f"CAST({q(cols.slice_by)} AS VARCHAR)" if cols.slice_by else "CAST(NULL AS VARCHAR)"
    pred = q(cols.prediction) if cols.prediction else "NULL"
    con.execute(
        f"""CREATE TABLE raw AS SELECT {ident} AS id, {q(cols.label)} AS y0, {pred} AS p0,
            {score} AS s, {group} AS g, {slice_} AS sl
            FROM {source}"""
    )
    rows = int(_one(con, "SELECT count(*) FROM raw"))
    loaded = Loaded(rows=rows, used=0, dropped=0, has_score=cols.score is not None)
    if task == "regression":
        y, yhat = "TRY_CAST(y0 AS DOUBLE)", "TRY_CAST(p0 AS DOUBLE)"
    elif task == "multiclass":
        y, yhat = "CAST(y0 AS VARCHAR)", "CAST(p0 AS VARCHAR)"
        if cols.prediction is None:
            raise EvalsError("task 'multiclass' needs `prediction`: the column of predicted classes")
    else:
        y, yhat = _binary_columns(con, cols, loaded)
    con.execute(
        f"""CREATE TABLE base AS SELECT row_number() OVER () - 1 AS i, id, y, yhat, s, g, sl FROM (
            SELECT id, {y} AS y, {yhat} AS yhat, s, g, sl FROM raw
        ) WHERE y IS NOT NULL AND yhat IS NOT NULL {"AND s IS NOT NULL" if cols.score else ""}
          AND (s IS NULL OR isfinite(s)) {"AND isfinite(y) AND isfinite(yhat)" if task == "regression" else ""}"""
    )
    loaded.used = int(_one(con, "SELECT count(*) FROM base"))
    loaded.dropped = rows - loaded.used
    if loaded.dropped:
        loaded.notes.append(
            f"{loaded.dropped} of {rows} rows were left out: a label, prediction or score was missing, "
            "not a number where one was needed, or not finite"
        )
    if not loaded.used:
        raise EvalsError(f"{path.name!r} has no row with a usable label and prediction ({rows} rows read)")
    if task != "regression":
        classes = int(_one(con, "SELECT count(DISTINCT y) FROM base"))
        if classes > MAX_CLASSES:
            raise EvalsError(
                f"label has {classes} distinct values; at most {MAX_CLASSES} classes are evaluated"
            )
    if cols.item_id is not None:
        dupes = int(_one(con, "SELECT count(*) - count(DISTINCT id) FROM base"))
        if dupes:
            raise EvalsError(
                f"item_id column {cols.item_id!r} repeats {dupes} value(s); item ids must be unique"
            )
    return loaded


def _binary_columns(con: duckdb.DuckDBPyConnection, cols: Columns, loaded: Loaded) -> tuple[str, str]:
    """SQL for y and yhat as 0/1: the positive label is `positive_label`, or 1/true."""
    labels = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT CAST(y0 AS VARCHAR) FROM raw WHERE y0 IS NOT NULL LIMIT 3"
        ).fetchall()
    ]
    if len(labels) > 2:
        raise EvalsError(
            f"label column {cols.label!r} has more than two values (e.g. {labels!r}); use task='multiclass'"
        )
    if cols.positive_label is not None:
        pos = quote_literal(cols.positive_label)
        loaded.positive = cols.positive_label
        y = f"CASE WHEN y0 IS NULL THEN NULL WHEN CAST(y0 AS VARCHAR) = {pos} THEN 1 ELSE 0 END"
        hard = f"CASE WHEN p0 IS NULL THEN NULL WHEN CAST(p0 AS VARCHAR) = {pos} THEN 1 ELSE 0 END"
    else:
        odd = [lab for lab in labels if lab.lower() not in _ONE and lab.lower() not in _ZERO]
        if odd:
            raise EvalsError(
                f"label column {cols.label!r} holds {odd!r}; binary labels are 0/1 or true/false, "
                "or pass positive_label to name the positive class"
            )
        loaded.positive = "1"
        y = _as01("y0")
        hard = _as01("p0")
    if cols.prediction is not None:
        if cols.positive_label is None:
            bad = _one(
                con,
                f"SELECT CAST(p0 AS VARCHAR) FROM raw WHERE p0 IS NOT NULL AND ({_as01('p0')}) IS NULL LIMIT 1",
            )
            if bad is not None:
                raise EvalsError(
                    f"prediction column {cols.prediction!r} holds {bad!r}; binary predictions are 0/1 or "
                    "true/false (pass positive_label for named classes, or pass scores as `score`)"
                )
        return y, hard
    if cols.score is None:
        raise EvalsError("task 'binary' needs `prediction` (predicted classes) or `score` (probabilities)")
    loaded.notes.append(f"predicted classes are score >= {cols.threshold:g}")
    return y, f"CASE WHEN s IS NULL THEN NULL WHEN s >= {float(cols.threshold)!r} THEN 1 ELSE 0 END"


_ONE = ("1", "1.0", "true")
_ZERO = ("0", "0.0", "false")


def _as01(col: str) -> str:
    low = f"lower(CAST({col} AS VARCHAR))"
    ones = ", ".join(quote_literal(v) for v in _ONE)
    zeros = ", ".join(quote_literal(v) for v in _ZERO)
    return f"CASE WHEN {low} IN ({ones}) THEN 1 WHEN {low} IN ({zeros}) THEN 0 ELSE NULL END"


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def point(table: str = "base") -> str:
    """The whole sample as one group, b = 0."""
    return f"SELECT 0 AS b, y, yhat, s, 1.0::DOUBLE AS w FROM {table}"


def slices(table: str = "base") -> str:
    return f"SELECT sl AS b, y, yhat, s, 1.0::DOUBLE AS w FROM {table}"


def resampled(table: str = "base") -> str:
    """Every bootstrap replicate of `boot` as a group, each item weighed by its draws."""
    return f"SELECT r.b, t.y, t.yhat, t.s, r.w FROM boot r JOIN {table} t USING (i)"


def make_resamples(con: duckdb.DuckDBPyConnection, n: int, replicates: int, seed: int) -> None:
    """Table boot(b, i, w): `replicates` resamples of n items with replacement, drawn by hashing
    (replicate, draw, seed), so the same seed gives the same resamples on every run."""
    con.execute(
        f"""CREATE OR REPLACE TABLE boot AS
            SELECT r.range::INTEGER AS b, (hash(r.range, k.range, {int(seed)}) % {int(n)})::BIGINT AS i,
                   count(*)::DOUBLE AS w
            FROM range(1, {int(replicates) + 1}) r CROSS JOIN range({int(n)}) k GROUP BY ALL"""
    )


def confusion(
    con: duckdb.DuckDBPyConnection, max_classes: int = 30
) -> tuple[list[str], list[list[int]]] | None:
    """Labels (sorted, from labels and predictions) and counts[true][predicted]; None past max_classes."""
    labels = sorted(
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT CAST(y AS VARCHAR) FROM base UNION SELECT DISTINCT CAST(yhat AS VARCHAR) FROM base"
        ).fetchall()
    )
    if len(labels) > max_classes:
        return None
    index = {lab: k for k, lab in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for y, p, count in con.execute(
        "SELECT CAST(y AS VARCHAR), CAST(yhat AS VARCHAR), count(*) FROM base GROUP BY ALL"
    ).fetchall():
        matrix[index[y]][index[p]] = int(count)
    return labels, matrix


def slice_sizes(con: duckdb.DuckDBPyConnection) -> list[tuple[str | None, int]]:
    return [
        (r[0], int(r[1]))
        for r in con.execute("SELECT sl, count(*) FROM base GROUP BY sl ORDER BY 2 DESC, 1").fetchall()
    ]
