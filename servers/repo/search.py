"""Content search over tracked and untracked-not-ignored files, through `git grep`."""

from __future__ import annotations

import re
from typing import Annotated

import anyio
from pydantic import Field

from common import content, kinds, offload
from common.budget import clamp, cursor_position, encode_cursor
from common.git import GitError
from common.policy import matching
from common.procs import ProcResult
from common.workspace import WorkspaceError
from servers.repo.context import RepoContext, decode, visible
from servers.repo.models import FileMatches, Match, SearchResult
from servers.repo.params import Cursor

MAX_MATCHES = 500
MAX_CONTEXT = 10
MAX_MATCH_CHARS = 400
MAX_QUERY = 1000


# One matching line: (path, line number, raw bytes); the text is decoded only when shown.
Hit = tuple[str, int, bytes]


async def grep_lines(
    ctx: RepoContext, query: str, *, regex: bool, case_sensitive: bool, word: bool = False
) -> tuple[list[Hit], bool]:
    """Every matching line in tracked and untracked-not-ignored files; True when output was cut."""
    outputs, cut = await grep_raw(ctx, query, regex=regex, case_sensitive=case_sensitive, word=word)
    hits: list[Hit] = []
    for data in outputs:
        for row in data.split(b"\n"):
            parts = row.split(b"\x00", 2)
            if len(parts) == 3:
                hits.append((parts[0].decode("utf-8", errors="replace"), int(parts[1]), parts[2]))
    return hits, cut


async def grep_raw(
    ctx: RepoContext, query: str, *, regex: bool, case_sensitive: bool, word: bool = False
) -> tuple[list[bytes], bool]:
    """git grep's raw `path\\0line\\0text` output for tracked and untracked-not-ignored files."""
    if not query:
        raise GitError("query is empty; pass the text to look for")
    if len(query) > MAX_QUERY or "\x00" in query or "\n" in query:
        raise GitError(f"query must be one line of at most {MAX_QUERY} characters without NUL bytes")
    if regex:
        try:
            re.compile(query)
        except re.error as exc:
            raise GitError(
                f"query {query!r} is not a valid regular expression: {exc}; or pass regex=false"
            ) from exc
    args = ["grep", "-n", "-z", "-I", "--no-color", "--no-textconv"]
    args += ["-P"] if regex else ["-F"]
    if not case_sensitive:
        args.append("-i")
    if word:
        args.append("-w")
    args += ["-e", query]
    # Tracked files and the list of untracked ones in parallel: `git grep --untracked` would walk
    # the whole tree before searching; usually there is little or nothing untracked to add.
    outputs: list[ProcResult] = []
    untracked: list[str] = []

    async def tracked() -> None:
        outputs.append(await ctx.git.run(args, check=False, max_output=64 * 1024 * 1024))

    async def others() -> None:
        listed = await ctx.git.run(["ls-files", "-z", "--others", "--exclude-standard"])
        untracked.extend(n for n in listed.text().split("\x00") if n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tracked)
        tg.start_soon(others)
    for start in range(0, len(untracked), 500):
        chunk = untracked[start : start + 500]
        outputs.append(await ctx.git.run([*args[:1], "--untracked", *args[1:], "--", *chunk], check=False))
    for out in outputs:
        if out.returncode not in (0, 1):
            err = out.text("stderr").strip().splitlines()
            raise GitError(f"search failed: {err[-1] if err else out.returncode}")
    return [out.stdout for out in outputs], any(out.stdout_truncated for out in outputs)


async def search(
    ctx: RepoContext,
    query: Annotated[
        str, Field(description="Text to find (or a regular expression with regex=true)"), kinds.TEXT
    ],
    regex: Annotated[bool, Field(description="Treat query as a Perl-style regular expression")] = False,
    case_sensitive: Annotated[bool, Field(description="Match case exactly")] = False,
    path_glob: Annotated[
        str | None, Field(description="Only files matching this glob, e.g. 'src/**/*.py'"), kinds.GLOB
    ] = None,
    context_lines: Annotated[
        int, Field(ge=0, le=MAX_CONTEXT, description="Lines of context around each match")
    ] = 0,
    limit: Annotated[int, Field(ge=1, le=MAX_MATCHES, description="Matches per page")] = 100,
    cursor: Cursor = None,
) -> SearchResult:
    """Search file contents (tracked and untracked-not-ignored files; binary files skipped).
    Matches are grouped by file with line numbers; `total` counts all matches."""
    limit = clamp(limit, 1, MAX_MATCHES, 100)
    context_lines = clamp(context_lines, 0, MAX_CONTEXT, 0)
    key = {"q": query, "re": regex, "cs": case_sensitive, "g": path_glob, "c": context_lines}
    offset = cursor_position(cursor, "search", key)
    outputs, cut = await grep_raw(ctx, query, regex=regex, case_sensitive=case_sensitive)
    page, total = await offload.run(_count_and_page, outputs, path_glob, offset, limit)
    files: list[FileMatches] = []
    used = 0
    returned = 0
    index = offset
    file_lines: dict[str, list[str]] = {}
    for path, line, raw in page:
        match = Match(line=line, text=_clip(visible(decode(raw)[0])))
        if context_lines:
            lines = file_lines.get(path)
            if lines is None:
                lines = _lines(ctx, path)
                file_lines[path] = lines
            match.before = [_clip(visible(x)) for x in lines[max(0, line - 1 - context_lines) : line - 1]]
            match.after = [_clip(visible(x)) for x in lines[line : line + context_lines]]
        size = len(match.model_dump_json()) + 20
        if used + size > ctx.max_chars and returned:
            break
        used += size
        if not files or files[-1].path != path:
            files.append(FileMatches(path=path, matches=[]))
        files[-1].matches.append(match)
        returned += 1
        index += 1
    more = index < total
    notes = []
    if more:
        notes.append(f"{total - index} more matches; pass next_cursor to continue or narrow with path_glob")
    if cut:
        notes.append("git's output was cut at 64 MiB: total is a lower bound; narrow the query")
    return SearchResult(
        query=query,
        files=files,
        total=total,
        returned=returned,
        truncated=more or cut,
        next_cursor=encode_cursor("search", o=index, **key) if more else None,
        note="; ".join(notes) or None,
    )


def _count_and_page(
    outputs: list[bytes], path_glob: str | None, offset: int, limit: int
) -> tuple[list[Hit], int]:
    """Count every row, decode only the page. Rows come grouped by file: the first pass counts
    rows per file, the files are filtered together (glob and policy, one pass each over the list),
    and a second pass reads rows only until the page is full."""
    counts: dict[bytes, int] = {}
    for data in outputs:
        offload.checkpoint()
        for row in data.split(b"\n"):
            nul = row.find(b"\x00")
            if nul > 0:
                key = row[:nul]
                counts[key] = counts.get(key, 0) + 1
    names = {key: key.decode("utf-8", errors="replace") for key in counts}
    listed = list(names.values())
    if path_glob:
        listed = matching((path_glob,), listed)
    allowed = set(content.allowed_names(listed))
    total = sum(n for key, n in counts.items() if names[key] in allowed)
    page: list[Hit] = []
    seen = 0
    for data in outputs:
        if seen >= offset + limit:
            break
        for row in data.split(b"\n"):
            nul = row.find(b"\x00")
            if nul <= 0 or names[row[:nul]] not in allowed:
                continue
            if seen >= offset:
                number, _, raw = row[nul + 1 :].partition(b"\x00")
                page.append((names[row[:nul]], int(number), raw))
            seen += 1
            if seen >= offset + limit:
                break
    return page, total


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MATCH_CHARS else text[:MAX_MATCH_CHARS] + "…"


def _lines(ctx: RepoContext, path: str) -> list[str]:
    try:
        data, _, _ = ctx.workspace.read_bytes(path, 8 * 1024 * 1024)
    except (WorkspaceError, OSError):
        return []
    return decode(data)[0].splitlines()
