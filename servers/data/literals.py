"""The files a query names, found where DuckDB reads files: a string (or quoted name) where a table
goes (after FROM, JOIN, PIVOT, SUMMARIZE, DESCRIBE), or an argument of a reader such as read_csv,
read_parquet or sniff_csv.

Each one that resolves inside the root is checked against the policy and rewritten to its real
absolute path, which is what the sandbox allows; every other file a query could reach (built from
expressions, outside the root, behind a symlink out, a URL, a glob) is not in the sandbox's allow
list, so DuckDB refuses it. This module decides what to allow; the sandbox enforces it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import content
from common.workspace import Resolved, Workspace, WorkspaceError
from servers.data.sandbox import QueryRefused

_READER = re.compile(r"^(read_\w+|parquet_\w+|\w+_scan|sniff_csv|glob|iceberg_\w+|delta_\w+)$", re.IGNORECASE)
# Keywords a table (so a file name) follows: FROM 'a.csv', PIVOT 'a.csv' ON ..., SUMMARIZE 'a.csv'.
_BEFORE_TABLE = frozenset(
    {"from", "join", "pivot", "unpivot", "summarize", "describe", "pivot_wider", "pivot_longer"}
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Reference:
    """One file a query names: as written, and where it lives."""

    text: str
    relative: str
    absolute: Path


def rewrite(sql: str, workspace: Workspace, allows: Callable[[str], bool]) -> tuple[str, list[Reference]]:
    """`sql` with each file it names made absolute, and those files; QueryRefused when it names a
    file the policy does not let this caller read, or a path through the home directory."""
    import duckdb

    tokens = duckdb.tokenize(sql)
    starts = [start for start, _ in tokens] + [len(sql)]
    out: list[str] = []
    found: dict[str, Reference] = {}
    stack: list[str] = []  # for each open bracket, the function it belongs to ("" for none)
    previous = ""  # the previous significant token, lower-cased
    last = 0
    for i, (start, kind) in enumerate(tokens):
        text = sql[start : starts[i + 1]].rstrip()
        if kind == duckdb.token_type.comment:
            continue
        if kind == duckdb.token_type.operator:
            for ch in text:
                if ch == "(":
                    stack.append(previous if _READER.match(previous) else "")
                elif ch == "[":
                    stack.append(stack[-1] if stack else "")
                elif ch in ")]" and stack:
                    stack.pop()
            previous = text.lower()
            continue
        quoted = _literal(text, kind)
        in_reader = bool(stack and stack[-1])
        if quoted is not None and (previous in _BEFORE_TABLE or in_reader):
            value, quote = quoted
            if value.startswith("~"):
                raise QueryRefused(
                    f"path {value!r} goes through the home directory; name files relative to the root"
                )
            resolved = _inside(value, workspace)
            # The policy first, whether or not the file exists: a denied name gets one answer, so
            # the answer does not tell whether such a file is there.
            if resolved is not None and not allows(value):
                content.refused_read(value, via="sql")
                raise QueryRefused(_refused(value))
            ref = _reference(value, resolved) if resolved is not None else None
            if ref is not None:
                found.setdefault(ref.relative, ref)
                out.append(sql[last:start])
                out.append(quote + str(ref.absolute).replace(quote, quote * 2) + quote)
                last = start + len(text)
        previous = text.lower()
    out.append(sql[last:])
    return "".join(out), list(found.values())


def _literal(text: str, kind: object) -> tuple[str, str] | None:
    """(value, quote character) of a plain string literal or a quoted identifier."""
    import duckdb

    for quote, expected in (("'", duckdb.token_type.string_const), ('"', duckdb.token_type.identifier)):
        if kind == expected and len(text) >= 2 and text[0] == quote and text[-1] == quote:
            return text[1:-1].replace(quote * 2, quote), quote
    return None


def _inside(value: str, workspace: Workspace) -> Resolved | None:
    """Where `value` points inside the root, existing or not; None for a URL, a glob or a path out
    of the root (DuckDB then refuses it itself)."""
    if not value or _SCHEME.match(value) or any(c in value for c in "*?[{"):
        return None
    try:
        return workspace.resolve(value, must_exist=False)
    except WorkspaceError:
        return None


def _reference(value: str, resolved: Resolved) -> Reference | None:
    """The regular file `value` names, or None (DuckDB then refuses it itself)."""
    if not resolved.absolute.is_file() or _in_git(resolved.relative):
        return None
    return Reference(value, resolved.relative, resolved.absolute)


def _in_git(relative: str) -> bool:
    """Git's internal state (it can hold credentials) is never a dataset."""
    return relative == ".git" or relative.startswith(".git/") or "/.git/" in f"/{relative}"


def _refused(value: str) -> str:
    # The message names neither the file nor the rule: an error quoting a withheld file is itself
    # withheld (common.content.screen), and the caller knows which file it wrote.
    why = content.refusal(value)
    if why and why[1]:
        return (
            "the query reads a file that needs a human's approval, and query never asks: call "
            "describe_dataset or profile_dataset with that file as `path`, which ask first"
        )
    return (
        "the query reads a file the policy does not let you read; a human can allow it by changing the "
        "policy (`onrecord policy explain` shows the rule)"
    )
