"""Finding, describing and querying datasets."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from common import content, kinds, offload
from common.budget import cursor_position, encode_cursor, take_within
from common.workspace import WorkspaceError
from servers.data.context import DataContext, Source, refuse_git_internals
from servers.data.formats import SNIFF_BYTES, encoding_of, format_of, reader, sniffer
from servers.data.literals import rewrite
from servers.data.models import Column, CsvOptions, DatasetDescription, DatasetEntry, DatasetList, QueryResult
from servers.data.params import Cursor, DatasetPath, Ref, Sql
from servers.data.sandbox import Sandbox, check_statement
from servers.data.values import json_value

MAX_WALK = 200_000
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox"})
MAX_QUERY_ROWS = 1000


async def list_datasets(
    ctx: DataContext,
    path: Annotated[str, Field(description="Directory to search, relative to the root"), kinds.PATH] = ".",
    cursor: Cursor = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Datasets per page")] = 100,
) -> DatasetList:
    """List the dataset files (CSV, TSV, Parquet, JSON, JSONL, and their .gz) under a directory,
    with size and format, including files .gitignore excludes (data often is). Paginated: pass
    next_cursor to continue."""
    resolved = ctx.workspace.resolve(path)
    refuse_git_internals(resolved.relative)
    if not resolved.absolute.is_dir():
        raise WorkspaceError(f"path {path!r} is a file, not a directory; use describe_dataset to read it")
    offset = cursor_position(cursor, "list_datasets", {"path": resolved.relative})
    found, capped = await offload.run(_walk, ctx, resolved.absolute)
    total = len(found)
    page = take_within(found[offset : offset + limit], ctx.max_chars)
    nxt = offset + len(page)
    more = nxt < total
    notes = []
    if more:
        notes.append(f"{total - nxt} more datasets; pass next_cursor to continue")
    if capped:
        notes.append(f"the walk stopped after {MAX_WALK} files; list a narrower directory")
    return DatasetList(
        root=str(ctx.root),
        datasets=page,
        total=total,
        returned=len(page),
        truncated=more or capped,
        next_cursor=encode_cursor("list_datasets", o=nxt, path=resolved.relative) if more else None,
        note="; ".join(notes) or None,
    )


def _walk(ctx: DataContext, start: Path) -> tuple[list[DatasetEntry], bool]:
    found: list[DatasetEntry] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIPPED_DIRS and not ctx.workspace.is_hidden(base / d)
        )
        offload.checkpoint()
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_WALK:
                return found, True
            detected = format_of(name)
            if detected is None:
                continue
            relative = (base / name).relative_to(ctx.root).as_posix()
            try:
                info = (base / name).stat()  # follows a link; a link out of the root is left out below
            except OSError:
                continue
            real = Path(os.path.realpath(base / name))
            if not real.is_relative_to(ctx.root) or not real.is_file():
                continue
            if not content.allows(relative, follow_links=True, name=False):
                continue
            found.append(
                DatasetEntry(path=relative, format=detected[0], gzipped=detected[1], size=info.st_size)
            )
    return found, False


async def describe_dataset(ctx: DataContext, path: DatasetPath, ref: Ref = None) -> DatasetDescription:
    """Describe a dataset: columns with types, row count, file size, and the format options
    detected (delimiter, quote, header, encoding for CSV/TSV). `ref` describes it as it was at a
    git revision."""
    async with ctx.source(path, ref) as source:
        head = b""
        if source.format not in ("parquet",):
            with open(source.absolute, "rb") as f:
                head = f.read(SNIFF_BYTES)
        return await ctx.run([source.absolute], lambda sandbox: _describe(sandbox, source, head))


def _describe(sandbox: Sandbox, source: Source, head: bytes) -> DatasetDescription:
    table = reader(source.absolute, source.format)
    names, types, _, _ = sandbox.rows(f"SELECT * FROM {table} LIMIT 0", max_rows=0)
    (rows,) = sandbox.one(f"SELECT count(*) FROM {table}")
    csv = None
    if source.format in ("csv", "tsv"):
        row = sandbox.one(f"SELECT * FROM {sniffer(source.absolute, source.format)}")
        delimiter, quote, escape, newline, _comment, skip, header = row[:7]
        csv = CsvOptions(
            delimiter=delimiter,
            quote=None if quote == "(empty)" else quote,
            escape=None if escape == "(empty)" else escape,
            header=bool(header),
            newline=newline,
            skip_rows=int(skip),
            date_format=row[8],
            timestamp_format=row[9],
        )
    return DatasetDescription(
        path=source.path,
        ref=source.ref,
        format=source.format,
        gzipped=source.gzipped,
        size=source.size,
        rows=int(rows),
        columns=[Column(name=n, type=t) for n, t in zip(names, types, strict=True)],
        encoding=encoding_of(head, source.gzipped) if head or source.format != "parquet" else None,
        csv=csv,
        total=len(names),
        returned=len(names),
    )


async def query(
    ctx: DataContext,
    sql: Sql,
    limit: Annotated[int, Field(ge=1, le=MAX_QUERY_ROWS, description="Rows to return at most")] = 100,
) -> QueryResult:
    """Run one read-only SQL statement (DuckDB dialect) over dataset files under the root and
    return its rows, capped at `limit` (`truncated` says more exist), with column types and time.
    Name files by string literal relative to the root: FROM 'data/a.parquet' or
    read_csv('data/a.csv', delim=';'). Only files the policy lets you read are reachable; writes,
    ATTACH, INSTALL/LOAD, SET, PRAGMA, URLs and paths outside the root are refused."""
    statement = check_statement(sql)
    rewritten, refs = rewrite(statement, ctx.workspace, lambda text: content.allows(text, follow_links=True))
    started = time.monotonic()

    def work(sandbox: Sandbox) -> QueryResult:
        names, types, rows, more, cut_mb = sandbox.fetch(rewritten, max_rows=limit)
        shown = [[json_value(v) for v in row] for row in rows]
        kept = take_within(shown, ctx.max_chars, size=lambda r: len(str(r)) + 2)
        cut = len(kept) < len(shown)
        notes = []
        if cut_mb is not None:
            notes.append(
                f"the result was cut at {cut_mb:g} MB of values (a quarter of [data] memory_mb) after "
                f"{len(rows)} rows; more may follow: select fewer or shorter columns, e.g. left(col, 100)"
            )
        elif more:
            notes.append(f"more than {limit} rows; aggregate, filter or raise limit (up to {MAX_QUERY_ROWS})")
        if cut:
            notes.append(f"{len(shown) - len(kept)} of {len(shown)} rows left out to stay in budget")
        return QueryResult(
            columns=[Column(name=n, type=t) for n, t in zip(names, types, strict=True)],
            rows=kept,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
            files=[r.relative for r in refs],
            returned=len(kept),
            truncated=more or cut,
            note="; ".join(notes) or None,
        )

    return await ctx.run([r.absolute for r in refs], work)
