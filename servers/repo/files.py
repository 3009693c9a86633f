"""Listing and reading files under the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated

from pydantic import Field

from common import content, kinds, offload
from common.budget import clamp, cursor_position, encode_cursor, take_within
from common.policy import matching
from common.workspace import WorkspaceError
from servers.repo.context import RepoContext, decode, is_binary, visible
from servers.repo.models import Entry, FileContent, FileList
from servers.repo.params import Cursor, FilePath, Rev

MAX_READ_BYTES = 32 * 1024 * 1024
MAX_LINE_CHARS = 2000
MAX_LIST = 1000
# Any line number a file can have: a window past the end stops at the end.
MAX_LINE = 10**9


def check_range(start_line: int, end_line: int | None) -> None:
    """Refuse a line range that ends before it starts (it would silently give one line)."""
    if end_line is not None and end_line < start_line:
        raise WorkspaceError(
            f"end_line {end_line} is before start_line {start_line}; pass end_line >= start_line, or leave "
            "end_line out to read as much as fits"
        )


def refuse_git_internals(relative: str) -> None:
    if relative == ".git" or relative.startswith(".git/") or "/.git/" in f"/{relative}":
        raise WorkspaceError(
            f"path {relative!r} is inside .git, git's internal state (it can hold credentials); "
            "use git_log, git_show or git_status instead"
        )


async def project_files(ctx: RepoContext, under: str = ".", *, include_ignored: bool = False) -> list[str]:
    """Files under `under` (relative posix paths): tracked plus untracked-not-ignored, or all."""
    if ctx.has_git() and not include_ignored:
        args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--deduplicate"]
        if under != ".":
            args += ["--", under]
        out = await ctx.git.run(args)
        names = [n for n in out.text().split("\x00") if n]
        return sorted(set(names))
    return _walk(ctx, under)


def _walk(ctx: RepoContext, under: str) -> list[str]:
    start = ctx.root if under == "." else ctx.root / under
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not ctx.workspace.is_hidden(base / d))
        for name in filenames:
            found.append((base / name).relative_to(ctx.root).as_posix())
    return sorted(found)


async def list_files(
    ctx: RepoContext,
    path: Annotated[str, Field(description="Directory to list, relative to the root"), kinds.PATH] = ".",
    pattern: Annotated[
        str | None, Field(description="Gitignore-style glob on the relative path, e.g. '**/*.py'"), kinds.GLOB
    ] = None,
    max_depth: Annotated[
        int | None,
        Field(ge=1, le=64, description="Levels below `path` to show; deeper files are summarised as dirs"),
    ] = None,
    include_ignored: Annotated[bool, Field(description="Also list files .gitignore excludes")] = False,
    cursor: Cursor = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST, description="Entries per page")] = 200,
) -> FileList:
    """List files (path, type, size) under a directory, honouring .gitignore. Paginated: pass
    next_cursor to continue."""
    resolved = ctx.workspace.resolve(path)
    refuse_git_internals(resolved.relative)
    if not resolved.absolute.is_dir():
        raise WorkspaceError(f"path {path!r} is a file, not a directory; use read_file to read it")
    limit = clamp(limit, 1, MAX_LIST, 200)
    depth = clamp(max_depth, 1, 64, 64) if max_depth is not None else None
    key = {"path": resolved.relative, "pattern": pattern, "depth": depth, "ignored": include_ignored}
    offset = cursor_position(cursor, "list_files", key)
    names = await project_files(ctx, resolved.relative, include_ignored=include_ignored)
    listed = await offload.run(_entries, names, pattern, depth, resolved.relative)
    total = len(listed)
    entries = [
        Entry(path=p, type="dir", files=count) if count is not None else _entry(ctx, p)
        for p, count in listed[offset : offset + limit]
    ]
    page = take_within(entries, ctx.max_chars)
    nxt = offset + len(page)
    more = nxt < total
    return FileList(
        root=str(ctx.root),
        entries=page,
        total=total,
        returned=len(page),
        truncated=more,
        next_cursor=encode_cursor(
            "list_files", o=nxt, path=resolved.relative, pattern=pattern, depth=depth, ignored=include_ignored
        )
        if more
        else None,
        note=f"{total - nxt} more entries; pass next_cursor to continue" if more else None,
    )


def _entries(
    names: list[str], pattern: str | None, depth: int | None, under: str
) -> list[tuple[str, int | None]]:
    """The paths to list, sorted, each with its file count when it is a folder folded below
    `depth`: matched and allowed. Nothing is stat'ed here: only the page returned is (`_entry`)."""
    offload.checkpoint()
    if pattern:
        names = matching((pattern,), names)
    names = content.allowed_names(names)
    if depth is None:
        return [(n, None) for n in names]
    collapsed: dict[str, int] = {}
    kept: list[tuple[str, int | None]] = []
    prefix_parts = 0 if under == "." else len(under.split("/"))
    for name in names:
        parts = name.split("/")
        if len(parts) - prefix_parts > depth:
            folder = "/".join(parts[: prefix_parts + depth])
            collapsed[folder] = collapsed.get(folder, 0) + 1
        else:
            kept.append((name, None))
    return sorted(kept + list(collapsed.items()))


def _entry(ctx: RepoContext, name: str) -> Entry:
    try:
        info = os.lstat(f"{ctx.root}/{name}")
    except OSError:
        return Entry(path=name, type="file", size=None)  # tracked but deleted in the work tree
    if stat.S_ISLNK(info.st_mode):
        return Entry(path=name, type="symlink", size=info.st_size)
    if stat.S_ISDIR(info.st_mode):
        return Entry(path=name, type="dir")
    return Entry(path=name, type="file", size=info.st_size)


async def read_file(
    ctx: RepoContext,
    path: FilePath,
    start_line: Annotated[int, Field(ge=1, le=MAX_LINE, description="First line to return (1-based)")] = 1,
    end_line: Annotated[
        int | None, Field(ge=1, le=MAX_LINE, description="Last line to return; default: as many as fit")
    ] = None,
    ref: Rev = None,
) -> FileContent:
    """Read a text file's lines, numbered. Long files are windowed: when truncated, pass
    next_start_line as start_line. Binary files give metadata only. `ref` reads the file at a
    revision instead of the working tree."""
    check_range(start_line, end_line)
    if ref is not None:
        relative = ctx.repo_path(path)
        refuse_git_internals(relative)
        sha = await ctx.git.verify_rev(ref, what="ref")
        size_out = await ctx.git.run(["cat-file", "-s", f"{sha}:{relative}"], check=False)
        if size_out.returncode != 0:
            raise WorkspaceError(f"path {relative!r} does not exist at ref {ref!r}")
        size = int(size_out.text().strip() or 0)
        blob = await ctx.git.run(["cat-file", "blob", f"{sha}:{relative}"], max_output=MAX_READ_BYTES)
        data = blob.stdout
        shown = relative
    else:
        data, info, resolved = ctx.workspace.read_bytes(path, MAX_READ_BYTES)
        refuse_git_internals(resolved.relative)
        size, shown = info.st_size, resolved.relative
    return window(ctx, shown, data, size, start_line, end_line, ref)


def window(
    ctx: RepoContext,
    path: str,
    data: bytes,
    size: int,
    start_line: int,
    end_line: int | None,
    ref: str | None,
) -> FileContent:
    """The numbered lines [start_line, end_line] of data, cut to the budget."""
    if is_binary(data):
        return FileContent(
            path=path,
            ref=ref,
            size=size,
            binary=True,
            note="binary file: metadata only",
        )
    text, encoding = decode(data)
    lines = text.splitlines()
    total = len(lines)
    start = max(1, start_line)
    last = total if end_line is None else min(total, max(start, end_line))
    out: list[str] = []
    used = 0
    cut_lines = 0
    n = start
    budget = ctx.max_chars
    while n <= last:
        line = visible(lines[n - 1])
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f"… [{len(line) - MAX_LINE_CHARS} more chars]"
            cut_lines += 1
        piece = f"{n}\t{line}"
        if used + len(piece) + 1 > budget and out:
            break
        out.append(piece)
        used += len(piece) + 1
        n += 1
    shown_last = n - 1
    more = shown_last < last
    notes = []
    if more:
        notes.append(
            f"lines {shown_last + 1}-{last} left out to stay in budget; pass start_line={shown_last + 1}"
        )
    if cut_lines:
        notes.append(f"{cut_lines} long line(s) cut at {MAX_LINE_CHARS} chars")
    if len(data) < size:
        notes.append(f"only the first {len(data)} of {size} bytes were read")
    if start > total and total:
        notes.append(f"start_line {start_line} is past the end ({total} lines)")
    return FileContent(
        path=path,
        ref=ref,
        size=size,
        encoding=encoding,
        total_lines=total,
        start_line=start if out else None,
        end_line=shown_last if out else None,
        next_start_line=shown_last + 1 if more else None,
        content="\n".join(out),
        truncated=more or bool(cut_lines) or len(data) < size,
        returned=len(out),
        total=total,
        note="; ".join(notes) or None,
    )
