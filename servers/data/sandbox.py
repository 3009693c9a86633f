"""Read-only SQL that cannot reach outside the files it was given (DESIGN §7, issue 12).

Every query runs in a fresh in-memory DuckDB connection set up like this, in this order:

- `allowed_paths` = exactly the files the caller may read (set before external access is turned off,
  after which DuckDB refuses every other file, directory, glob and URL);
- `enable_external_access = false`, extension autoload and autoinstall off, community and unsigned
  extensions off, persistent secrets off;
- home, extension, secret and temp directories inside a private directory made for this connection
  (so `~` never reaches the user's home, duckdb/duckdb#26064), or no spilling at all;
- a memory limit, a thread count (at most one per 64 MB of the limit), whether rows keep their
  order, then `lock_configuration = true`, so no statement can undo it.
  The limit is the call's: DuckDB's `memory_limit` covers only its buffer manager (tables, hash
  tables, sort runs, file buffers), so it gets DUCKDB_SHARE of it and the rest is headroom for what
  it allocates outside (aggregate states, per-thread scan state, results on their way to Python).

Statements are checked before they run: exactly one, of a read type (SELECT, which covers WITH,
VALUES, FROM, SUMMARIZE, DESCRIBE and SHOW, or a PIVOT). A timer interrupts a query that runs past
the time limit; rows are fetched up to a cap, never materialised whole, and in small batches that
stop once the values fetched pass a quarter of the call's memory limit (a few huge text values
count as much as many small rows). DuckDB still computes a batch of rows (a vector of up to 2048)
at once, outside its memory limit, so that much of a query's values is held before any is cut.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from common.errors import OnrecordError

if TYPE_CHECKING:
    import duckdb

MAX_MESSAGE = 1200
DUCKDB_SHARE = 0.75  # of a call's memory limit, for DuckDB's buffer manager
MB_PER_THREAD = 64  # each thread holds its own scan buffers and partial hash tables
FETCH_SHARE = 0.25  # of a call's memory limit, for the values of the rows a statement returns
MAX_BATCH = 256  # rows fetched at once


class QueryError(OnrecordError):
    """DuckDB could not run the statement (a syntax error, a missing column, a bad file)."""


class QueryRefused(QueryError):
    """The statement is not a single read, or it names a file it may not read."""


class QueryTimeout(QueryError):
    """The statement ran past the time limit and was interrupted."""


class QueryMemory(QueryError):
    """The statement needed more memory than the limit allows."""


@dataclass(frozen=True)
class Limits:
    """What one call may spend."""

    timeout_s: float = 30.0
    memory_mb: int = 1024
    threads: int = 2
    spill_mb: int = 2048  # 0: no temp files; a query that outgrows memory fails instead

    @property
    def duckdb_mb(self) -> int:
        """DuckDB's own memory_limit: its buffer manager's share of the call's limit."""
        return max(1, int(self.memory_mb * DUCKDB_SHARE))

    @property
    def fetch_bytes(self) -> int:
        """The bytes of values one statement's rows may bring into Python."""
        return max(1, int(self.memory_mb * FETCH_SHARE * 1024 * 1024))

    @property
    def duckdb_threads(self) -> int:
        """The thread count, at most one per MB_PER_THREAD of the memory limit."""
        return max(1, min(self.threads, self.memory_mb // MB_PER_THREAD))


class Fetched(NamedTuple):
    names: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    more: bool  # rows past the cap exist, or the byte budget stopped the fetch
    cut_mb: float | None = None  # the budget, in MB, when it stopped the fetch


def value_bytes(value: Any, limit: int = sys.maxsize) -> int:
    """A rough size of a fetched value: text and bytes by their length, nested values by every
    part, anything else a few words. Counting stops once past `limit` (a value that large is over
    budget whatever the rest holds), so a huge list costs no more to weigh than the budget."""
    size = 0
    pending = [value]
    while pending and size <= limit:
        item = pending.pop()
        size += 16
        if isinstance(item, str | bytes | bytearray):
            size += len(item)
        elif isinstance(item, dict):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list | tuple):
            pending += item
    return size


@dataclass
class Sandbox:
    """One locked-down connection, for one tool call. Open it in the worker thread that uses it;
    `interrupt` may be called from any thread."""

    allowed: Sequence[Path]
    limits: Limits
    root: Path
    ordered: bool = True  # False lets DuckDB write and return rows in any order (a faster table copy)
    started: float = field(default_factory=time.monotonic)
    _conn: duckdb.DuckDBPyConnection | None = None
    _private: str | None = None
    _timed_out: bool = False
    _cancelled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Sandbox:
        import duckdb

        self._private = tempfile.mkdtemp(prefix="onrecord-data-")
        private = self._private
        spill = os.path.join(private, "spill")
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_persistent_secrets": False,
            "home_directory": private,
            "extension_directory": os.path.join(private, "extensions"),
            "secret_directory": os.path.join(private, "secrets"),
            "temp_directory": spill if self.limits.spill_mb else "",
            "memory_limit": f"{self.limits.duckdb_mb}MB",
            "threads": self.limits.duckdb_threads,
            "preserve_insertion_order": self.ordered,
        }
        if self.limits.spill_mb:
            config["max_temp_directory_size"] = f"{self.limits.spill_mb}MB"
        conn = duckdb.connect(":memory:", config=config)
        try:
            conn.execute("SET allowed_paths = ?", [[str(p) for p in self.allowed]])
            conn.execute("SET allowed_directories = ?", [[]])
            conn.execute("SET enable_external_access = false")
            conn.execute("SET lock_configuration = true")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._conn = conn
            if self._cancelled:
                conn.interrupt()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            raise QueryError("the query's connection is closed")
        return self._conn

    def interrupt(self) -> None:
        """Stop the running statement (the call was cancelled); safe from any thread."""
        with self._lock:
            self._cancelled = True
            if self._conn is not None:
                self._conn.interrupt()

    def _expire(self) -> None:
        with self._lock:
            self._timed_out = True
            if self._conn is not None:
                self._conn.interrupt()

    def remaining(self) -> float:
        return self.limits.timeout_s - (time.monotonic() - self.started)

    def rows(
        self, sql: str, params: Sequence[object] | None = None, max_rows: int | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]], bool]:
        """(column names, column types, rows, truncated) of one statement of ours or a checked one,
        within the call's time limit; at most `max_rows` rows are fetched, fewer when their values
        pass the byte budget (see `fetch`)."""
        got = self.fetch(sql, params, max_rows)
        return got.names, got.types, got.rows, got.more

    def fetch(self, sql: str, params: Sequence[object] | None = None, max_rows: int | None = None) -> Fetched:
        """Run one statement and fetch its rows: all of them when `max_rows` is None (statements
        of ours that return a few rows), else at most `max_rows`, in batches that stop once the
        values fetched pass the call's byte budget (`Limits.fetch_bytes`)."""
        timer = threading.Timer(max(0.0, self.remaining()), self._expire)
        timer.daemon = True
        timer.start()
        try:
            if self._timed_out:
                raise self._timeout_error()
            result = self.conn.execute(sql, params) if params is not None else self.conn.execute(sql)
            description = result.description or []
            names = [d[0] for d in description]
            types = [str(d[1]) for d in description]
            if max_rows is None:
                return Fetched(names, types, result.fetchall(), False)
            budget = self.limits.fetch_bytes
            rows: list[tuple[Any, ...]] = []
            used = 0
            batch = 1  # the first row measures how large rows are
            while len(rows) <= max_rows:
                wanted = min(batch, max_rows + 1 - len(rows))
                got = result.fetchmany(wanted)
                rows += got
                for row in got:
                    for v in row:
                        used += value_bytes(v, budget - used)
                if len(got) < wanted:
                    break
                if used >= budget and len(rows) <= max_rows:
                    return Fetched(names, types, rows, True, budget / (1024 * 1024))
                per_row = max(1, used // len(rows))
                batch = max(1, min(MAX_BATCH, (budget - used) // per_row))
            return Fetched(names, types, rows[:max_rows], len(rows) > max_rows)
        except Exception as exc:
            raise self.translate(exc) from None
        finally:
            timer.cancel()

    def one(self, sql: str, params: Sequence[object] | None = None) -> tuple[Any, ...]:
        _, _, rows, _ = self.rows(sql, params, max_rows=1)
        if not rows:
            raise QueryError("the statement returned no row")
        return rows[0]

    def _timeout_error(self) -> QueryTimeout:
        elapsed = time.monotonic() - self.started
        return QueryTimeout(
            f"the query was stopped after {elapsed:.1f}s: it ran past the {self.limits.timeout_s:g}s limit "
            "([data] timeout_s); narrow it (fewer rows, a filter, a LIMIT) or ask for a sample"
        )

    def translate(self, exc: BaseException) -> OnrecordError:
        """Our error for a DuckDB exception, with paths under the root made relative and the
        private directory's name hidden."""
        import duckdb

        if isinstance(exc, OnrecordError):
            return exc
        if isinstance(exc, duckdb.InterruptException):
            if self._timed_out:
                return self._timeout_error()
            return QueryError("the query was cancelled")
        if isinstance(exc, duckdb.OutOfMemoryException):
            return QueryMemory(
                f"the query needs more memory than the {self.limits.memory_mb} MB limit ([data] memory_mb); "
                "aggregate or filter before collecting, or query fewer columns"
            )
        message = self.clean(str(exc))
        if isinstance(exc, duckdb.PermissionException):
            return QueryRefused(
                f"the query tried to reach a file, directory, URL or setting it may not: {message}. "
                "A query reads only dataset files under the root that the policy lets you read, named by a "
                "string literal, e.g. SELECT * FROM 'data/sales.csv' or read_csv('data/sales.csv'); globs, "
                "URLs and paths outside the root are refused"
            )
        if isinstance(exc, duckdb.Error):
            return QueryError(message)
        return QueryError(f"the query failed: {type(exc).__name__}")

    def clean(self, message: str) -> str:
        root = str(self.root)
        message = message.replace(root + "/", "").replace(root, ".")
        if self._private:
            message = message.replace(self._private, "<private>")
        message = re.sub(r"\n\s*\n", "\n", message).strip()
        return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


# ------------------------------------------------------------------------------ statement checks

READ_TYPES = frozenset({"SELECT"})
_PIVOT = frozenset({"pivot", "unpivot", "pivot_wider", "pivot_longer"})


def check_statement(sql: str) -> str:
    """The one read statement in `sql` (trailing `;` allowed), or QueryRefused saying why not."""
    import duckdb

    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("sql is empty; pass one SELECT statement, e.g. SELECT * FROM 'data.csv' LIMIT 10")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()[:MAX_MESSAGE]) from None
    statements = [s for s in statements if s.query.strip().strip(";").strip()]
    if len(statements) != 1:
        raise QueryRefused(
            f"sql holds {len(statements)} statements; pass exactly one read statement "
            "(SELECT, WITH, SUMMARIZE, DESCRIBE, SHOW or PIVOT)"
        )
    statement = statements[0]
    kind = statement.type.name
    if kind in READ_TYPES or (kind == "MULTI" and _first_keyword(statement.query) in _PIVOT):
        return statement.query
    raise QueryRefused(
        f"{kind} statements are not allowed: the data server runs read statements only "
        "(SELECT, WITH, SUMMARIZE, DESCRIBE, SHOW or PIVOT); nothing may be written, attached, installed, "
        "loaded or set"
    )


def _first_keyword(sql: str) -> str:
    import duckdb

    for start, kind in duckdb.tokenize(sql):
        if kind == duckdb.token_type.comment:
            continue
        word = re.match(r"[A-Za-z_]+", sql[start:])
        return word.group(0).lower() if word else ""
    return ""


def sql_string(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
