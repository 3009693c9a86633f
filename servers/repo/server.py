"""The repo server: git-aware code context. The only repo module that imports mcp."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from common.config import Settings
from common.server import AccountableServer
from servers.repo.context import RepoContext
from servers.repo.models import (
    BlameResult,
    DiffResult,
    FileContent,
    FileList,
    LogResult,
    OutlineResult,
    Overview,
    RelatedResult,
    SearchResult,
    ShowResult,
    StatusResult,
    SymbolResult,
)

NAME = "repo"
INSTRUCTIONS = (
    "Git-aware context for the repository at the server's root. Start with overview, then list_files, "
    "search, outline and find_symbol to locate code, read_file to read it, and git_log, git_diff, "
    "git_blame and related_files for history. Paths are relative to the root. Every result is bounded: "
    "when `truncated` is true, `note` says what was left out and `next_cursor` / `next_start_line` get more."
)
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

Path = Annotated[str, Field(description="A path relative to the repository root, e.g. 'src/app.py'")]
Cursor = Annotated[
    str | None, Field(description="The next_cursor of a previous call with the same arguments")
]
Rev = Annotated[
    str | None, Field(description="A revision: branch, tag, commit id, or an expression such as 'HEAD~2'")
]


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the repo tools to `server`.

    The domain modules are imported inside the tools, on first use: a host waits for start-up.
    """

    # These filter paths that git or a directory walk listed: canonical already, links not followed,
    # so the decision depends on the path text alone and is remembered.
    seen: dict[str, str] = {}

    def effective(path: str) -> str:
        action = seen.get(path)
        if action is None:
            action = server.explain("read_file", {"path": path}, resolve=False).effective
            if len(seen) < 500_000:
                seen[path] = action
        return action

    def listable(path: str) -> bool:
        return effective(path) != "deny"

    def readable(path: str) -> bool:
        return effective(path) == "allow"

    ctx = RepoContext.create(
        settings.root,
        hidden=settings.protected_paths(),
        max_tokens=settings.max_result_tokens,
        readable=readable,
    )
    listing_ctx = RepoContext(ctx.root, ctx.workspace, ctx.git, ctx.max_tokens, listable)

    async def overview_tool() -> Overview:
        """A first look at the repository: branch, HEAD, uncommitted counts, languages by bytes,
        top-level entries, key files (README, manifests, CI, Dockerfiles), test layout, last commits."""
        from servers.repo import overview

        return await overview.overview(listing_ctx)

    async def list_files(
        path: Annotated[str, Field(description="Directory to list, relative to the root")] = ".",
        pattern: Annotated[
            str | None, Field(description="Gitignore-style glob on the relative path, e.g. '**/*.py'")
        ] = None,
        max_depth: Annotated[
            int | None, Field(description="Levels below `path` to show; deeper files are summarised as dirs")
        ] = None,
        include_ignored: Annotated[bool, Field(description="Also list files .gitignore excludes")] = False,
        cursor: Cursor = None,
        limit: Annotated[int, Field(description="Entries per page (at most 1000)")] = 200,
    ) -> FileList:
        """List files (path, type, size) under a directory, honouring .gitignore. Paginated: pass
        next_cursor to continue."""
        from servers.repo import files

        return await files.list_files(listing_ctx, path, pattern, max_depth, include_ignored, cursor, limit)

    async def read_file(
        path: Path,
        start_line: Annotated[int, Field(description="First line to return (1-based)")] = 1,
        end_line: Annotated[
            int | None, Field(description="Last line to return; default: as many as fit")
        ] = None,
        ref: Rev = None,
    ) -> FileContent:
        """Read a text file's lines, numbered. Long files are windowed: when truncated, pass
        next_start_line as start_line. Binary files give metadata only. `ref` reads the file at a
        revision instead of the working tree."""
        from servers.repo import files

        return await files.read_file(ctx, path, start_line, end_line, ref)

    async def search_tool(
        query: Annotated[str, Field(description="Text to find (or a regular expression with regex=true)")],
        regex: Annotated[bool, Field(description="Treat query as a Perl-style regular expression")] = False,
        case_sensitive: Annotated[bool, Field(description="Match case exactly")] = False,
        path_glob: Annotated[
            str | None, Field(description="Only files matching this glob, e.g. 'src/**/*.py'")
        ] = None,
        context_lines: Annotated[
            int, Field(description="Lines of context around each match (at most 10)")
        ] = 0,
        limit: Annotated[int, Field(description="Matches per page (at most 500)")] = 100,
        cursor: Cursor = None,
    ) -> SearchResult:
        """Search file contents (tracked and untracked-not-ignored files; binary files skipped).
        Matches are grouped by file with line numbers; `total` counts all matches."""
        from servers.repo import search

        return await search.search(ctx, query, regex, case_sensitive, path_glob, context_lines, limit, cursor)

    async def outline(path: Path) -> OutlineResult:
        """The symbols of one file: kind, qualified name, line range, signature, first docstring line.
        Exact for Python; top-level definitions for other common languages."""
        from servers.repo import symbols

        return await symbols.outline(ctx, path)

    async def find_symbol(
        name: Annotated[str, Field(description="Symbol name, e.g. 'load_config' or 'Config.load'")],
        kind: Annotated[
            str | None, Field(description="Only this kind: class, function, method, variable, type, ...")
        ] = None,
        include_references: Annotated[
            bool, Field(description="Also list lines that mention the name")
        ] = False,
        limit: Annotated[int, Field(description="Results to return (at most 500)")] = 50,
    ) -> SymbolResult:
        """Find where a symbol is defined across the repository, and optionally where it is used."""
        from servers.repo import symbols

        return await symbols.find_symbol(ctx, name, kind, include_references, limit)

    async def git_status() -> StatusResult:
        """Staged, unstaged and untracked files with added/deleted line counts, plus branch and upstream."""
        from servers.repo import history

        return await history.git_status(ctx)

    async def git_diff(
        base: Rev = None,
        target: Annotated[
            str | None, Field(description="Revision to compare base with; default: the working tree")
        ] = None,
        staged: Annotated[bool, Field(description="Compare the index (staged changes) with HEAD")] = False,
        path: Annotated[str | None, Field(description="Only this file or directory")] = None,
        context_lines: Annotated[int, Field(description="Context lines per hunk (at most 50)")] = 3,
        cursor: Cursor = None,
    ) -> DiffResult:
        """A diff summarised for reading: per-file stats first, then whole hunks within the budget,
        then the files left out and how to get them. With no arguments: unstaged changes."""
        from servers.repo import history

        return await history.git_diff(ctx, base, target, staged, path, context_lines, cursor)

    async def git_log(
        path: Annotated[str | None, Field(description="Only commits touching this path")] = None,
        rev: Rev = None,
        author: Annotated[str | None, Field(description="Author name or email contains this text")] = None,
        since: Annotated[str | None, Field(description="Date, e.g. '2026-01-31' or '2 weeks ago'")] = None,
        until: Annotated[str | None, Field(description="Date, e.g. '2026-03-01'")] = None,
        grep: Annotated[str | None, Field(description="Commit message contains this text")] = None,
        limit: Annotated[int, Field(description="Commits per page (at most 100)")] = 20,
        cursor: Cursor = None,
    ) -> LogResult:
        """Commit history: sha, author, date, subject, and files changed with line counts."""
        from servers.repo import history

        return await history.git_log(ctx, path, rev, author, since, until, grep, limit, cursor)

    async def git_show(
        rev: Annotated[str, Field(description="The commit to show")] = "HEAD",
        path: Annotated[str | None, Field(description="Show this file as it was at rev instead")] = None,
    ) -> ShowResult:
        """A commit: header, message, per-file stats and a budgeted diff; or a file at rev when path is given."""
        from servers.repo import history

        return await history.git_show(ctx, rev, path)

    async def git_blame(
        path: Path,
        start_line: Annotated[int, Field(description="First line (1-based)")] = 1,
        end_line: Annotated[int | None, Field(description="Last line")] = None,
        rev: Rev = None,
    ) -> BlameResult:
        """Who last changed each line: ranges of lines with a commit id; each commit's author, date and
        summary are given once in `commits`."""
        from servers.repo import history

        return await history.git_blame(ctx, path, start_line, end_line, rev)

    async def related_files(
        path: Path,
        limit: Annotated[int, Field(description="Files to return (at most 100)")] = 10,
    ) -> RelatedResult:
        """Files related to one file, each with its reasons: changed together in history (recent
        commits weigh more), its tests, what it imports and what imports it."""
        from servers.repo import overview

        return await overview.related_files(ctx, path, limit)

    tools = [
        (overview_tool, "overview", "Repository overview"),
        (list_files, "list_files", "List files"),
        (read_file, "read_file", "Read a file"),
        (search_tool, "search", "Search file contents"),
        (outline, "outline", "Outline a file"),
        (find_symbol, "find_symbol", "Find a symbol"),
        (git_status, "git_status", "Git status"),
        (git_diff, "git_diff", "Git diff"),
        (git_log, "git_log", "Git log"),
        (git_show, "git_show", "Show a commit"),
        (git_blame, "git_blame", "Git blame"),
        (related_files, "related_files", "Related files"),
    ]
    for fn, name, title in tools:
        server.add_tool(
            fn, name=name, title=title, annotations=READ_ONLY, structured_output=True, server=NAME
        )


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
